import { type Logger, pino } from 'pino';

export type { Logger };
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';

/** Structured JSON logs on stderr (stdout stays free for what a command prints for people). */
export function createLogger(name: string, level: LogLevel = 'info'): Logger {
  return pino({ name, level, base: { node: name } }, pino.destination(2));
}

export const silentLogger: Logger = pino({ level: 'silent' });
