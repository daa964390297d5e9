import { pino, type Logger } from 'pino';

export type { Logger };

/** One JSON line per event; child loggers carry the aggregate or component. */
export function createLogger(name: string, level: string = process.env['IMGR_LOG_LEVEL'] ?? 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid } });
}

/** A logger that writes nothing, for tests that assert on outcomes rather than logs. */
export const silentLogger = (): Logger => pino({ level: 'silent' });
