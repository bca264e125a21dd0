import type { FastifyBaseLogger } from 'fastify';
import nodemailer from 'nodemailer';

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
}

/** Sends mail. The server only ever mails one-time codes, never a secret that outlives minutes. */
export interface Mailer {
  send(message: MailMessage): Promise<void>;
  close(): void;
}

/** Mail over SMTP via nodemailer, from a `smtp://` or `smtps://` URL. */
export function smtpMailer(url: string, from: string): Mailer {
  const transport = nodemailer.createTransport(url);
  return {
    async send(message) {
      await transport.sendMail({ from, ...message });
    },
    close() {
      transport.close();
    },
  };
}

/**
 * The development default: no SMTP configured, so each message is printed to the server log where
 * the person running the server can read the code. Never use it where others read the logs.
 */
export function logMailer(log: FastifyBaseLogger): Mailer {
  return {
    async send(message) {
      log.warn({ mailTo: message.to, subject: message.subject }, `mail (no SMTP configured):\n${message.text}`);
    },
    close() {},
  };
}
