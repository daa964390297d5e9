import { pino, type Logger } from 'pino';

export type { Logger };

/** One JSON line per event; child loggers carry the aggregate or component. Written to `file` when given, else stdout. */
export function createLogger(name: string, level: string = process.env['IMGR_LOG_LEVEL'] ?? 'info', file?: string): Logger {
  const options = { name, level, base: { pid: process.pid } };
  return file === undefined ? pino(options) : pino(options, pino.destination({ dest: file, mkdir: true, sync: false }));
}

/** A logger that writes nothing, for tests that assert on outcomes rather than logs. */
export const silentLogger = (): Logger => pino({ level: 'silent' });
