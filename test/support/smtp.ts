import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  to: string[];
  raw: string;
}

/** A real SMTP server on 127.0.0.1 that keeps what it receives, for tests that read their mail. */
export interface SmtpSink {
  url: string;
  messages: ReceivedMail[];
  /** Waits for the next mail to `to` after `since` messages and returns its 8-digit code. */
  codeFor(to: string, options?: { after?: number; timeoutMs?: number }): Promise<string>;
  close(): Promise<void>;
}

export async function startSmtpSink(): Promise<SmtpSink> {
  const messages: ReceivedMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      let raw = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        raw += chunk;
      });
      stream.on('end', () => {
        messages.push({ to: session.envelope.rcptTo.map((r) => r.address), raw });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as { port: number };

  async function codeFor(to: string, options: { after?: number; timeoutMs?: number } = {}): Promise<string> {
    const deadline = Date.now() + (options.timeoutMs ?? 10_000);
    for (;;) {
      const mail = messages.slice(options.after ?? 0).findLast((m) => m.to.includes(to));
      const code = mail === undefined ? undefined : /code: (\d{8})/.exec(mail.raw)?.[1];
      if (code !== undefined) return code;
      if (Date.now() > deadline) throw new Error(`no mail with a code reached ${to}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  return {
    url: `smtp://127.0.0.1:${port}`,
    messages,
    codeFor,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
