import { deriveSessionSecrets, fromBase64Url, type SessionKey } from '@latchkey/core';
import * as opaque from '@serenity-kit/opaque';
import { TEST_KEY_STRETCHING } from './server.js';

/**
 * OPAQUE logins made by hand over HTTP, beside the SDK: to learn what the SDK derives and never sends
 * (the export key, the session key and the token from it), or to stop half way.
 */

/** A raw JSON POST: the status and the parsed answer, whatever they are. */
export async function postJson(serverUrl: string, path: string, body: unknown) {
  const response = await fetch(new URL(path, serverUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** KE1 → KE2 with the server, and the honest KE3 for it, not yet sent: a login half done. */
export async function beginRawLogin(serverUrl: string, email: string, password: string) {
  await opaque.ready;
  const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password });
  const started = await postJson(serverUrl, '/v1/session/login/start', { email, startLoginRequest });
  if (started.status !== 200) throw new Error(`raw login: start answered ${started.status}`);
  const finished = opaque.client.finishLogin({
    clientLoginState,
    loginResponse: started.body.loginResponse as string,
    password,
    keyStretching: TEST_KEY_STRETCHING,
  });
  if (finished === undefined) throw new Error('raw login: the server KE2 did not verify');
  return {
    /** The body of `POST /v1/session/login/finish`. */
    finish: { loginId: started.body.loginId as string, finishLoginRequest: finished.finishLoginRequest },
    exportKey: fromBase64Url(finished.exportKey),
    sessionKey: fromBase64Url(finished.sessionKey) as SessionKey,
  };
}

/** A whole login: the secrets the client holds afterwards (the token is the session's bearer token). */
export async function rawLogin(serverUrl: string, email: string, password: string) {
  const { finish, exportKey, sessionKey } = await beginRawLogin(serverUrl, email, password);
  const finished = await postJson(serverUrl, '/v1/session/login/finish', finish);
  if (finished.status !== 200) throw new Error(`raw login: finish answered ${finished.status}`);
  return { exportKey, sessionKey, token: deriveSessionSecrets(sessionKey).token };
}
