import type { FastifyBaseLogger } from 'fastify';
import { describe, expect, it } from 'vitest';
import type { Mailer, MailMessage } from '../src/mail/mailer.js';
import { outbox } from '../src/mail/outbox.js';

/** A mailer whose sends stay pending until the test settles them, one by one. */
function heldMailer() {
  const sends: { message: MailMessage; resolve(): void; reject(error: Error): void }[] = [];
  const mailer: Mailer = {
    send: (message) =>
      new Promise<void>((resolve, reject) => {
        sends.push({ message, resolve, reject });
      }),
    close() {},
  };
  return { mailer, sends };
}

/** A logger that keeps its error lines: (object, message). */
function recordingLog() {
  const errors: [Record<string, unknown>, string][] = [];
  const log = {
    error: (object: Record<string, unknown>, message: string) => errors.push([object, message]),
  } as unknown as FastifyBaseLogger;
  return { log, errors };
}

const mail = (to: string): MailMessage => ({ to, subject: 'Your code', text: `code: 12345678 for ${to}` });
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('outbox', () => {
  it('returns before the mail is sent, and drains once every send settled', async () => {
    const { mailer, sends } = heldMailer();
    const { log, errors } = recordingLog();
    const box = outbox(mailer, log);

    box.post(mail('a@example.com'));
    box.post(mail('b@example.com'));
    await tick();
    expect(sends.map((s) => s.message.to)).toEqual(['a@example.com', 'b@example.com']);

    let drained: number | undefined;
    const draining = box.drain(10_000).then((unsent) => {
      drained = unsent;
    });
    sends[0]?.resolve();
    await tick();
    expect(drained).toBeUndefined(); // one still on its way
    box.post(mail('c@example.com')); // posted while draining: waited for too
    await tick();
    sends[1]?.resolve();
    await tick();
    expect(drained).toBeUndefined();
    sends[2]?.resolve();
    await draining;
    expect(drained).toBe(0);
    expect(errors).toEqual([]);
  });

  it('runs a posted job after returning: sends what it makes, nothing when it makes nothing, logs its failure', async () => {
    const { mailer, sends } = heldMailer();
    const { log, errors } = recordingLog();
    const box = outbox(mailer, log);
    const ran: string[] = [];

    box.post(async () => {
      ran.push('makes a mail');
      return mail('a@example.com');
    });
    box.post(async () => {
      ran.push('makes none');
      return undefined;
    });
    box.post(async () => {
      ran.push('fails');
      throw new Error('lookup failed');
    });
    expect(ran).toEqual([]); // nothing ran before post returned
    await tick();
    expect(ran).toEqual(['makes a mail', 'makes none', 'fails']);
    expect(sends.map((s) => s.message.to)).toEqual(['a@example.com']);
    expect(errors.map(([, message]) => message)).toEqual(['mail not sent']);
    sends[0]?.resolve();
    expect(await box.drain(1000)).toBe(0);
  });

  it('logs a failed send with its recipient and subject, never its text', async () => {
    const { mailer, sends } = heldMailer();
    const { log, errors } = recordingLog();
    const box = outbox(mailer, log);
    box.post(mail('a@example.com'));
    await tick();
    sends[0]?.reject(new Error('connect ECONNREFUSED'));
    expect(await box.drain(10_000)).toBe(0);
    expect(errors).toHaveLength(1);
    const [object, message] = errors[0] as [Record<string, unknown>, string];
    expect(message).toBe('mail not sent');
    expect(object).toMatchObject({ mailTo: 'a@example.com', subject: 'Your code' });
    expect((object['err'] as Error).message).toBe('connect ECONNREFUSED');
    expect(JSON.stringify(object)).not.toContain('12345678');
  });

  it('catches a mailer that throws before returning a promise', async () => {
    const { log, errors } = recordingLog();
    const box = outbox(
      {
        send: () => {
          throw new Error('no transport');
        },
        close() {},
      },
      log,
    );
    expect(() => box.post(mail('a@example.com'))).not.toThrow();
    expect(await box.drain(10_000)).toBe(0);
    expect(errors.map(([object]) => (object['err'] as Error).message)).toEqual(['no transport']);
  });

  it('gives up draining after its timeout and says how many mails are still on their way', async () => {
    const { mailer } = heldMailer();
    const box = outbox(mailer, recordingLog().log);
    box.post(mail('a@example.com'));
    box.post(mail('b@example.com'));
    expect(await box.drain(20)).toBe(2);
  });
});
