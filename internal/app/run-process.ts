import { loadConfig, type Config } from "../config/index.js";
import { createLogger, type Logger } from "../telemetry/index.js";

export type Process = { close(): Promise<void> };

/**
 * The whole life of a `cmd/*` process: parse config (exit 2 on bad config), start, then on SIGTERM
 * or SIGINT close gracefully within `shutdownDeadlineMs` (exit 1 if it does not finish in time).
 */
export async function runProcess(
  name: string,
  start: (config: Config, logger: Logger) => Promise<Process>,
  shutdownDeadlineMs = 20_000,
): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    process.stderr.write(`${name}: ${(error as Error).message}\n`);
    process.exit(2);
  }
  const logger = createLogger(name, config.logLevel);
  if (config.unknownVariables.length > 0) logger.warn({ variables: config.unknownVariables }, "unknown CHAT_* variables ignored");
  let running: Process;
  try {
    running = await start(config, logger);
  } catch (error) {
    logger.fatal({ err: error }, "start failed");
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    const deadline = setTimeout(() => {
      logger.error("shutdown deadline passed, exiting");
      process.exit(1);
    }, shutdownDeadlineMs);
    deadline.unref();
    running.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

/** Runs every cleanup step even when one fails; rethrows the first failure at the end. */
export async function closeAll(steps: (() => Promise<unknown> | unknown)[]): Promise<void> {
  let first: unknown;
  for (const step of steps) {
    try {
      await step();
    } catch (error) {
      first ??= error;
    }
  }
  if (first !== undefined) throw first;
}
