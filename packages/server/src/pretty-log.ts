/** pino's numeric levels, as people read them. */
const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** Fields every line has, shown in the line's own layout or not at all. */
const OMITTED = new Set(['level', 'time', 'pid', 'hostname', 'msg']);

/**
 * A log destination for a person at a terminal, in pino-pretty's manner without its dependencies:
 * each JSON line pino writes becomes `12:00:00.000 INFO  message {other fields}`, and a mail the
 * development mailer printed (a line with `mailTo`) becomes a box with the mail's text, so the
 * verification code stands out instead of hiding in an escaped JSON string. It formats what pino
 * has already redacted, so it shows nothing the JSON would not. Production logs (not a TTY) stay JSON.
 */
export function prettyLogStream(out: { write(text: string): unknown }): { write(line: string): void } {
  return {
    write(line: string) {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        out.write(line);
        return;
      }
      out.write(typeof entry.mailTo === 'string' ? mailBox(entry) : plainLine(entry));
    },
  };
}

function plainLine(entry: Record<string, unknown>): string {
  const time = typeof entry.time === 'number' ? new Date(entry.time).toISOString().slice(11, 23) : '';
  const level = (LEVELS[entry.level as number] ?? String(entry.level)).padEnd(5);
  const rest = Object.fromEntries(Object.entries(entry).filter(([key]) => !OMITTED.has(key)));
  const fields = Object.keys(rest).length === 0 ? '' : ` ${JSON.stringify(rest)}`;
  return `${time} ${level} ${String(entry.msg ?? '')}${fields}\n`;
}

/** The printed mail, framed: its text is what the development mailer's message holds after its first line. */
function mailBox(entry: Record<string, unknown>): string {
  const message = String(entry.msg ?? '');
  const text = message.slice(message.indexOf('\n') + 1).trimEnd();
  const rule = '─'.repeat(72);
  const lines = [
    '',
    `┌${rule}`,
    `│ Mail to ${String(entry.mailTo)} (no SMTP configured: printed here, not sent)`,
    `│ Subject: ${String(entry.subject ?? '')}`,
    '│',
    ...text.split('\n').map((line) => `│   ${line}`.trimEnd()),
    `└${rule}`,
    '',
  ];
  return `${lines.join('\n')}\n`;
}
