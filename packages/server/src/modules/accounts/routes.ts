import {
  AcceptedResponse,
  AccountInfoResponse,
  EmailCodeRequest,
  EmailOnlyRequest,
  Empty,
  LoginFinishRequest,
  LoginFinishResponse,
  LoginStartRequest,
  LoginStartResponse,
  PasswordFinishRequest,
  PasswordFinishResponse,
  PasswordStartRequest,
  ReauthFinishRequest,
  ReauthFinishResponse,
  ReauthStartRequest,
  RegisterFinishRequest,
  RegisterFinishResponse,
  RegisterStartRequest,
  RegisterStartResponse,
  ResetFinishRequest,
  ResetFinishResponse,
  ResetRegisterRequest,
  ResetVerifyResponse,
  SessionIdParams,
  SessionListResponse,
  VerifyEmailRequest,
  VerifyEmailResponse,
} from '@latchkey/core';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../../context.js';
import { route } from '../../route.js';
import * as accounts from './service.js';

// Bodies below are typed by casts: the route schema has already validated them (ajv, no coercion).
type Body<T> = { body: unknown } & { body: T };

/** The accounts module: registration, verification, login, sessions, password change and reset. */
export async function accountsRoutes(app: FastifyInstance, opts: { ctx: ServerContext }): Promise<void> {
  const { ctx } = opts;
  const r = route(app, ctx);

  r.post('/v1/account/register/start', {
    tag: 'accounts',
    summary: 'OPAQUE registration, step 1',
    body: RegisterStartRequest,
    reply: RegisterStartResponse,
    handler: async ({ body, ip }: Body<{ email: string; registrationRequest: string }> & { ip: string }) =>
      accounts.signUpStart(ctx, body.email, body.registrationRequest, ip),
  });

  r.post('/v1/account/register/finish', {
    tag: 'accounts',
    summary: 'OPAQUE registration, step 2: create the account and mail a code',
    body: RegisterFinishRequest,
    reply: RegisterFinishResponse,
    handler: async ({
      body,
      ip,
    }: Body<{ email: string; registrationRecord: string; wrapKB: string; registrationTicket: string }> & {
      ip: string;
    }) => {
      const { email, registrationRecord, wrapKB, registrationTicket } = body;
      const { accountId } = await accounts.register(ctx, email, registrationRecord, wrapKB, registrationTicket, ip);
      return { accountId, verificationRequired: true };
    },
  });

  r.post('/v1/account/verify', {
    tag: 'accounts',
    summary: 'Confirm the email address with the mailed code',
    body: VerifyEmailRequest,
    reply: VerifyEmailResponse,
    handler: async ({ body }: Body<{ email: string; code: string; accountId?: string }>) => {
      await accounts.verifyEmail(ctx, body.email, body.code, body.accountId);
      return { verified: true };
    },
  });

  r.post('/v1/account/verify/resend', {
    tag: 'accounts',
    summary: 'Mail a new verification code',
    body: EmailOnlyRequest,
    reply: AcceptedResponse,
    handler: async ({ body, ip }: Body<{ email: string }> & { ip: string }) => {
      await accounts.resendVerification(ctx, body.email, ip);
      return { accepted: true };
    },
  });

  r.post('/v1/session/login/start', {
    tag: 'sessions',
    summary: 'OPAQUE login: KE1 in, KE2 out',
    body: LoginStartRequest,
    reply: LoginStartResponse,
    handler: async ({
      body,
      ip,
    }: Body<{ email: string; startLoginRequest: string; deviceToken?: string }> & { ip: string }) =>
      accounts.loginStart(ctx, body.email, body.startLoginRequest, ip, body.deviceToken),
  });

  r.post('/v1/session/login/finish', {
    tag: 'sessions',
    summary: 'OPAQUE login: KE3 in, a session and the sealed keys bundle out',
    body: LoginFinishRequest,
    reply: LoginFinishResponse,
    handler: async (
      request: Body<{ loginId: string; finishLoginRequest: string; deviceName?: string }> & {
        headers: Record<string, string | string[] | undefined>;
      },
    ) => {
      const agent = request.headers['user-agent'];
      return accounts.loginFinish(ctx, request.body.loginId, request.body.finishLoginRequest, {
        deviceName: request.body.deviceName ?? null,
        userAgent: typeof agent === 'string' ? agent.slice(0, 200) : null,
      });
    },
  });

  r.post('/v1/session/reauth/start', {
    tag: 'sessions',
    summary: 'Re-check the password for the current session: KE1 in, KE2 out',
    body: ReauthStartRequest,
    reply: LoginStartResponse,
    guarded: true,
    handler: async ({ body }: Body<{ startLoginRequest: string }>, auth) =>
      accounts.reauthStart(ctx, auth, body.startLoginRequest),
  });

  r.post('/v1/session/reauth/finish', {
    tag: 'sessions',
    summary: 'Re-check the password: KE3 in, the session marked fresh',
    body: ReauthFinishRequest,
    reply: ReauthFinishResponse,
    guarded: true,
    handler: async ({ body }: Body<{ loginId: string; finishLoginRequest: string }>, auth) =>
      accounts.reauthFinish(ctx, auth, body.loginId, body.finishLoginRequest),
  });

  r.post('/v1/session/logout', {
    tag: 'sessions',
    summary: 'End the current session',
    reply: Empty,
    guarded: true,
    handler: async (_request, auth) => {
      await accounts.revokeSession(ctx, auth, auth.session.id, { revokeDevice: false });
      return {};
    },
  });

  r.get('/v1/sessions', {
    tag: 'sessions',
    summary: "List the account's live sessions",
    reply: SessionListResponse,
    guarded: true,
    handler: async (_request, auth) => ({ sessions: await accounts.listSessions(ctx, auth) }),
  });

  r.delete('/v1/sessions/:sessionId', {
    tag: 'sessions',
    summary: 'Revoke one session of the account',
    params: SessionIdParams,
    reply: Empty,
    guarded: true,
    handler: async ({ params }: { params: { sessionId: string } }, auth) => {
      await accounts.revokeSession(ctx, auth, params.sessionId, { revokeDevice: true });
      return {};
    },
  });

  r.get('/v1/account', {
    tag: 'accounts',
    summary: 'The account behind the session',
    reply: AccountInfoResponse,
    guarded: true,
    handler: async (_request, auth) => accounts.accountInfo(auth),
  });

  r.delete('/v1/account', {
    tag: 'accounts',
    summary: 'Delete the account and everything it owns (needs a fresh password check)',
    reply: Empty,
    guarded: true,
    handler: async (_request, auth) => {
      await accounts.deleteAccount(ctx, auth);
      return {};
    },
  });

  r.post('/v1/account/password/start', {
    tag: 'accounts',
    summary: 'Password change, step 1 (needs a fresh password check)',
    body: PasswordStartRequest,
    reply: RegisterStartResponse,
    guarded: true,
    handler: async ({ body }: Body<{ registrationRequest: string }>, auth) =>
      accounts.passwordChangeStart(ctx, auth, body.registrationRequest),
  });

  r.post('/v1/account/password/finish', {
    tag: 'accounts',
    summary: 'Password change, step 2: new record and wrapKB; other sessions end',
    body: PasswordFinishRequest,
    reply: PasswordFinishResponse,
    guarded: true,
    handler: async (
      { body }: Body<{ registrationRecord: string; wrapKB: string; registrationTicket: string }>,
      auth,
    ) => ({
      revokedSessions: await accounts.passwordChangeFinish(
        ctx,
        auth,
        body.registrationRecord,
        body.wrapKB,
        body.registrationTicket,
      ),
    }),
  });

  r.post('/v1/account/reset/start', {
    tag: 'accounts',
    summary: 'Mail a password reset code (always accepted)',
    body: EmailOnlyRequest,
    reply: AcceptedResponse,
    handler: async ({ body, ip }: Body<{ email: string }> & { ip: string }) => {
      await accounts.resetStart(ctx, body.email, ip);
      return { accepted: true };
    },
  });

  r.post('/v1/account/reset/verify', {
    tag: 'accounts',
    summary: 'Trade the reset code for a short-lived reset token',
    body: EmailCodeRequest,
    reply: ResetVerifyResponse,
    handler: async ({ body }: Body<{ email: string; code: string }>) =>
      accounts.resetVerify(ctx, body.email, body.code),
  });

  r.post('/v1/account/reset/register', {
    tag: 'accounts',
    summary: 'Reset, OPAQUE registration step 1',
    body: ResetRegisterRequest,
    reply: RegisterStartResponse,
    handler: async ({ body }: Body<{ resetToken: string; registrationRequest: string }>) =>
      accounts.resetRegister(ctx, body.resetToken, body.registrationRequest),
  });

  r.post('/v1/account/reset/finish', {
    tag: 'accounts',
    summary: 'Reset, step 2: new record and new kB, kA kept, every session ended',
    body: ResetFinishRequest,
    reply: ResetFinishResponse,
    handler: async ({
      body,
    }: Body<{ resetToken: string; registrationRecord: string; wrapKB: string; registrationTicket: string }>) =>
      accounts.resetFinish(ctx, body.resetToken, body.registrationRecord, body.wrapKB, body.registrationTicket),
  });
}
