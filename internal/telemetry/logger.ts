import { pino, type Logger } from "pino";

export type { Logger };

/** A JSON logger with the process name bound; message bodies and tokens are never logged. */
export function createLogger(name: string, level: string = "info"): Logger {
  return pino({
    name,
    level,
    base: { pid: process.pid },
    redact: { paths: ["req.headers.authorization", "body", "password", "token"], remove: true },
  });
}
