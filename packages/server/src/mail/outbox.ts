import type { FastifyBaseLogger } from 'fastify';
import type { Mailer, MailMessage } from './mailer.js';

/**
 * Mail sent while the request that asked for it has already been answered. Reset and resend answer
 * alike whether or not the email has an account; waiting for SMTP, or failing with it, only when one
 * exists would tell (by the time taken, or by a 500). A failed send is logged: who and which mail,
 * never the text, which holds the code.
 */
export interface Outbox {
  /**
   * Starts sending and returns at once; the outcome goes to the log. Given a function, runs it first,
   * after the answer too, and sends what it makes (nothing when it makes nothing): work that happens
   * only for an existing account (looking it up, storing its code) then costs the answer nothing.
   */
  post(message: MailMessage | (() => Promise<MailMessage | undefined>)): void;
  /**
   * Waits until every message posted so far (and any posted meanwhile) is sent or has failed, at most
   * `timeoutMs`; returns how many were still on their way then.
   */
  drain(timeoutMs: number): Promise<number>;
}

export function outbox(mailer: Mailer, log: FastifyBaseLogger): Outbox {
  const pending = new Set<Promise<void>>();
  return {
    post(job) {
      let message: MailMessage | undefined;
      const sending: Promise<void> = Promise.resolve()
        .then(async () => {
          message = typeof job === 'function' ? await job() : job;
          if (message !== undefined) await mailer.send(message);
        })
        .catch((err: unknown) => log.error({ err, mailTo: message?.to, subject: message?.subject }, 'mail not sent'))
        .finally(() => pending.delete(sending));
      pending.add(sending);
    },
    async drain(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), timeoutMs);
      });
      try {
        while (pending.size > 0) {
          if ((await Promise.race([Promise.all(pending), late])) === 'late') break;
        }
      } finally {
        clearTimeout(timer);
      }
      return pending.size;
    },
  };
}
