import { hostname } from "node:os";
import { Counter } from "prom-client";
import { createTokenService } from "../auth/index.js";
import type { Config } from "../config/index.js";
import { createPresenceApi, createPresenceRelay, createPresenceTracker } from "../presence/index.js";
import { createRateLimits } from "../ratelimit/index.js";
import { createRedis, redisKeys } from "../redis/index.js";
import { pingDatabase } from "../storage/index.js";
import { createMetrics, type Logger } from "../telemetry/index.js";
import { closeAll } from "./run-process.js";
import { openDatabase } from "./open-database.js";
import { serveApi } from "./serve-api.js";

export type PresenceServer = { port: number; close(): Promise<void> };

/**
 * The presence process: seed REST paths + PresenceService on CHAT_PRESENCE_PORT, the sweeper that
 * turns users offline after the grace period, and the relay that publishes transitions (pub/sub
 * for gateways, outbox rows for Kafka).
 */
export async function startPresence(config: Config, logger: Logger): Promise<PresenceServer> {
  const db = await openDatabase(config, logger, Math.min(config.dbPoolSize, 5));
  const keys = redisKeys(config.redisPrefix);
  const redis = createRedis(config.redisUrl);
  const blocking = createRedis(config.redisUrl, { maxRetriesPerRequest: null });
  const metrics = createMetrics();
  const transitions = new Counter({ name: "chat_presence_changes_total", help: "Presence changes relayed (after coalescing).", registers: [metrics.registry] });
  const tracker = createPresenceTracker({ redis, keys, ttlMs: config.presenceTtlMs, graceMs: config.presenceGraceMs });
  const relay = createPresenceRelay({
    redis, blocking, keys, db, logger,
    consumer: `${hostname()}:${process.pid}`,
    onRelayed: (n) => transitions.inc(n),
  });
  const relaying = relay.run().catch((error: unknown) => logger.error({ err: error }, "presence relay stopped"));
  let sweeping = false;
  const sweeper = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    tracker.sweepDue().catch((error: unknown) => logger.warn({ err: error }, "presence sweep failed")).finally(() => { sweeping = false; });
  }, config.presenceSweepMs);

  const tokens = createTokenService({ secret: config.jwtSecret, ttlSeconds: config.jwtTtlSeconds });
  const limits = createRateLimits({ settings: config.rateLimit, redisUrl: config.redisUrl, keys: redisKeys(config.redisPrefix), logger });
  const api = createPresenceApi(tracker, tokens, config.maxRequestBytes, (userId, setHeader) => limits.heartbeat(userId, setHeader));
  const server = await serveApi({
    config, logger, metrics,
    port: config.presencePort,
    routes: (router) => api.connectRoutes(router),
    handleRest: (req, res) => api.handleRest(req, res),
    health: {},
    ready: async () => (await pingDatabase(db)) && (await redis.ping().then(() => true, () => false)),
  });
  logger.info({ port: server.port, ttlMs: config.presenceTtlMs, graceMs: config.presenceGraceMs }, "presence listening");
  return {
    port: server.port,
    close: () =>
      closeAll([
        () => server.stopReady(),
        () => server.close(),
        () => clearInterval(sweeper),
        () => relay.stop(),
        () => limits.close(),
        () => { blocking.disconnect(); },
        () => relaying,
        () => redis.quit(),
        () => db.end(),
      ]),
  };
}
