import { Counter } from "prom-client";
import type { Config } from "../config/index.js";
import { createInboxWorker, createLogSink, createWebhookSink } from "../inbox/index.js";
import { sendJson, serveHttp } from "../http/index.js";
import { createPresenceTracker } from "../presence/index.js";
import { createRedis, redisKeys } from "../redis/index.js";
import { createKeyRotationWorker, messageCodecFromConfig } from "../crypto/index.js";
import { pingDatabase } from "../storage/index.js";
import { createMetrics, type Logger } from "../telemetry/index.js";
import { closeAll } from "./run-process.js";
import { openDatabase } from "./open-database.js";

export type InboxWorkerProcess = { port: number; close(): Promise<void> };

/** The inbox-worker process: BullMQ workers (inbox rows, notifications, dead letters) + /metrics and /health. */
export async function startInboxWorker(config: Config, logger: Logger): Promise<InboxWorkerProcess> {
  const db = await openDatabase(config, logger, Math.min(config.dbPoolSize, config.inboxConcurrency * 2 + 2));
  const keys = redisKeys(config.redisPrefix);
  const redis = createRedis(config.redisUrl);
  const metrics = createMetrics();
  const processed = new Counter({
    name: "chat_inbox_jobs_total", help: "Inbox and notification jobs completed.", labelNames: ["queue"] as const, registers: [metrics.registry],
  });
  const sink = config.notifyWebhookUrl !== "" ? createWebhookSink(config.notifyWebhookUrl, config.notifyTimeoutMs) : createLogSink(logger);
  const worker = createInboxWorker({
    redisUrl: config.redisUrl,
    keys,
    db,
    presence: createPresenceTracker({ redis, keys, ttlMs: config.presenceTtlMs, graceMs: config.presenceGraceMs }),
    sink,
    logger,
    policy: { attempts: config.inboxAttempts, backoffMs: config.inboxBackoffMs },
    concurrency: config.inboxConcurrency,
    lockMs: config.inboxLockMs,
    reconcileMs: config.inboxReconcileMs,
    onProcessed: (queue) => processed.inc({ queue }),
  });
  await worker.start();
  // Key rotation jobs (`chatctl keys rotate`): re-seal old rows with the active key, resumable.
  const keyRotation = createKeyRotationWorker({
    redisUrl: config.redisUrl, keys, db, codec: messageCodecFromConfig(config), batchSize: config.keyRotationBatch, pauseMs: config.keyRotationPauseMs, logger, lockMs: config.inboxLockMs,
  });
  const server = await serveHttp(async (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/health") return sendJson(res, 200, { status: "ok" });
    if (path === "/ready") {
      const ok = (await pingDatabase(db)) && (await redis.ping().then(() => true, () => false));
      return sendJson(res, ok ? 200 : 503, { status: ok ? "ready" : "not ready" });
    }
    if (path === "/metrics") {
      res.writeHead(200, { "content-type": metrics.registry.contentType });
      return res.end(await metrics.registry.metrics());
    }
    sendJson(res, 404, { error: { code: "not_found", message: "no such route" } });
  }, { host: config.bindHost, port: config.inboxMetricsPort });
  logger.info({ port: server.port, sink: sink.name, concurrency: config.inboxConcurrency }, "inbox worker running");
  return {
    port: server.port,
    close: () => closeAll([() => server.close(), () => keyRotation.close(), () => worker.close(), () => redis.quit(), () => db.end()]),
  };
}
