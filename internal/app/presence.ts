import { hostname } from "node:os";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Counter } from "prom-client";
import { errorInterceptor } from "../api/index.js";
import { createTokenService } from "../auth/index.js";
import type { Config } from "../config/index.js";
import { AppError } from "../errors/index.js";
import { applyCors, sendError, sendJson, serveHttp, type Request, type Response } from "../http/index.js";
import { createPresenceApi, createPresenceRelay, createPresenceTracker } from "../presence/index.js";
import { createRateLimits } from "../ratelimit/index.js";
import { createRedis, redisKeys } from "../redis/index.js";
import { createDatabase, migrate, pingDatabase } from "../storage/index.js";
import { createMetrics, type Logger } from "../telemetry/index.js";
import { closeAll } from "./run-process.js";

export type PresenceServer = { port: number; close(): Promise<void> };

/**
 * The presence process: seed REST paths + PresenceService on CHAT_PRESENCE_PORT, the sweeper that
 * turns users offline after the grace period, and the relay that publishes transitions (pub/sub
 * for gateways, outbox rows for Kafka).
 */
export async function startPresence(config: Config, logger: Logger): Promise<PresenceServer> {
  const db = await createDatabase({
    url: config.databaseUrl,
    poolSize: Math.min(config.dbPoolSize, 5),
    statementTimeoutMs: config.dbStatementTimeoutMs,
    connectionTimeoutMs: config.dbConnectionTimeoutMs,
  });
  await migrate(db);
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
  let ready = true;
  const fallback = async (req: Request, res: Response) => {
    try {
      const path = (req.url ?? "/").split("?")[0];
      if (path === "/health") return sendJson(res, 200, { status: "ok" });
      if (path === "/ready") {
        const ok = ready && (await pingDatabase(db)) && (await redis.ping().then(() => true, () => false));
        return sendJson(res, ok ? 200 : 503, { status: ok ? "ready" : "not ready" });
      }
      if (path === "/metrics") {
        res.writeHead(200, { "content-type": metrics.registry.contentType });
        return res.end(await metrics.registry.metrics());
      }
      if (!(await api.handleRest(req, res))) sendJson(res, 404, { error: { code: "not_found", message: "no such route" } });
    } catch (error) {
      if (AppError.from(error).code === "internal") logger.error({ err: error, url: req.url }, "presence call failed");
      sendError(res, error);
    }
  };
  const connectHandler = connectNodeAdapter({
    routes: (router) => api.connectRoutes(router),
    interceptors: [errorInterceptor(logger, metrics)],
    readMaxBytes: config.maxRequestBytes,
    fallback: (req, res) => void fallback(req, res as Response),
  });
  const server = await serveHttp(
    (req, res) => {
      if (applyCors(req, res, config.corsOrigins)) return;
      connectHandler(req, res);
    },
    { host: config.bindHost, port: config.presencePort },
  );
  logger.info({ port: server.port, ttlMs: config.presenceTtlMs, graceMs: config.presenceGraceMs }, "presence listening");
  return {
    port: server.port,
    close: () =>
      closeAll([
        () => { ready = false; },
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
