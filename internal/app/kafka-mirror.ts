import { hostname } from "node:os";
import { Counter, Gauge } from "prom-client";
import type { Config } from "../config/index.js";
import { sendJson, serveHttp } from "../http/index.js";
import { createKafkaMirror, measureOutboxLag, pruneSentOutbox } from "../mirror/index.js";
import { createMetrics, type Logger } from "../telemetry/index.js";
import { closeAll } from "./run-process.js";
import { openDatabase } from "./open-database.js";

export type KafkaMirrorProcess = { port: number; close(): Promise<void> };

/** Sent outbox rows are deleted after this long. */
const SENT_RETENTION_HOURS = 24;
const PRUNE_EVERY_MS = 60_000;

/**
 * The kafka-mirror process. With KAFKA_BROKERS empty it logs that and idles (a supervisor must
 * not see it exit), still answering /health. Lag gauges are measured on every /metrics scrape.
 */
export async function startKafkaMirror(config: Config, logger: Logger): Promise<KafkaMirrorProcess> {
  const metrics = createMetrics();
  if (config.kafkaBrokers.length === 0) {
    logger.info("kafka mirror off: KAFKA_BROKERS is empty; idling");
    const server = await serveHttp(async (req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      if (path === "/health" || path === "/ready") return sendJson(res, 200, { status: "disabled" });
      if (path === "/metrics") {
        res.writeHead(200, { "content-type": metrics.registry.contentType });
        return res.end(await metrics.registry.metrics());
      }
      sendJson(res, 404, { error: { code: "not_found", message: "no such route" } });
    }, { host: config.bindHost, port: config.mirrorMetricsPort });
    return { port: server.port, close: () => server.close() };
  }

  const db = await openDatabase(config, logger, Math.min(config.dbPoolSize, 4));
  const relayed = new Counter({ name: "chat_mirror_relayed_total", help: "Outbox rows produced to Kafka and acknowledged.", labelNames: ["topic"] as const, registers: [metrics.registry] });
  const errors = new Counter({ name: "chat_mirror_errors_total", help: "Failed relay passes (retried with backoff).", registers: [metrics.registry] });
  const unsent = new Gauge({ name: "chat_mirror_outbox_unsent_rows", help: "Outbox rows not yet relayed (lag).", registers: [metrics.registry] });
  const oldest = new Gauge({ name: "chat_mirror_outbox_oldest_unsent_age_seconds", help: "Age of the oldest unsent outbox row (lag).", registers: [metrics.registry] });
  const mirror = createKafkaMirror({
    db, logger,
    brokers: config.kafkaBrokers,
    clientId: `chat-kafka-mirror-${hostname()}-${process.pid}`,
    topicPrefix: config.kafkaTopicPrefix,
    partitions: config.kafkaPartitions,
    batch: config.mirrorBatch,
    shards: config.mirrorShards,
    pollMs: config.mirrorPollMs,
    onRelayed: (rows) => { for (const r of rows) relayed.inc({ topic: r.topic }); },
    onError: () => errors.inc(),
  });
  const running = mirror.run().catch((error: unknown) => logger.error({ err: error }, "kafka mirror stopped"));
  const pruner = setInterval(() => {
    pruneSentOutbox(db, SENT_RETENTION_HOURS, 10_000).catch((error: unknown) => logger.warn({ err: error }, "outbox prune failed"));
  }, PRUNE_EVERY_MS);
  pruner.unref();

  const server = await serveHttp(async (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    try {
      if (path === "/health" || path === "/ready") {
        const ok = mirror.healthy;
        return sendJson(res, ok ? 200 : 503, { status: ok ? "ok" : "not relaying", lastSuccessMs: mirror.lastSuccessMs });
      }
      if (path === "/metrics") {
        const lag = await measureOutboxLag(db);
        unsent.set(lag.unsent);
        oldest.set(lag.oldestAgeSeconds);
        res.writeHead(200, { "content-type": metrics.registry.contentType });
        return res.end(await metrics.registry.metrics());
      }
      sendJson(res, 404, { error: { code: "not_found", message: "no such route" } });
    } catch (error) {
      logger.warn({ err: error, path }, "metrics call failed");
      sendJson(res, 503, { error: { code: "unavailable", message: "try again" } });
    }
  }, { host: config.bindHost, port: config.mirrorMetricsPort });
  logger.info({ port: server.port, brokers: config.kafkaBrokers }, "kafka mirror metrics listening");
  return {
    port: server.port,
    close: () => closeAll([() => server.close(), () => clearInterval(pruner), () => mirror.stop(), () => running, () => db.end()]),
  };
}
