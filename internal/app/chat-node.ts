import { connectNodeAdapter } from "@connectrpc/connect-node";
import { ActorHost, plainCodec, type ActorCommand, type EventSink } from "../actor/index.js";
import { connectRoutes, createApi, errorInterceptor, restRoutes, type ActorRouter, type Notifier } from "../api/index.js";
import { createTokenService } from "../auth/index.js";
import type { Config } from "../config/index.js";
import { AppError } from "../errors/index.js";
import { applyCors, sendError, sendJson, serveHttp, type Request, type Response } from "../http/index.js";
import { createDatabase, migrate, pingDatabase } from "../storage/index.js";
import { createDeliveryHub, createDeliveryNotifier, createDeliverySink, createEventService } from "../delivery/index.js";
import { createRedis, redisKeys } from "../redis/index.js";
import { createInboxQueue, createInboxSink } from "../inbox/index.js";
import { createMetrics, type Logger } from "../telemetry/index.js";
import { closeAll } from "./run-process.js";

/** Retries on NOT_OWNER this many times before the caller sees UNAVAILABLE. */
const MAX_ROUTING_ATTEMPTS = 5;

export type ChatNode = { port: number; close(): Promise<void> };

export type ChatNodeOverrides = { sinks?: EventSink[]; notifier?: Notifier };

/**
 * Fans committed events out to every sink (delivery streams, inbox jobs, ...). The actor awaits
 * this before its next batch, so each sink sees a conversation's events in seq order; one failing
 * sink does not starve the others.
 */
function fanOut(sinks: EventSink[], logger: Logger): EventSink {
  return {
    async publish(conversationId, events) {
      await Promise.all(sinks.map((s) => s.publish(conversationId, events).catch((err: unknown) =>
        logger.warn({ err, conversationId }, "sink failed after commit"))));
    },
  };
}

/** A chat-node: public API on one port, hosting the conversation actors it owns. */
export async function startChatNode(config: Config, logger: Logger, overrides: ChatNodeOverrides = {}): Promise<ChatNode> {
  const db = await createDatabase({
    url: config.databaseUrl,
    poolSize: config.dbPoolSize,
    statementTimeoutMs: config.dbStatementTimeoutMs,
    connectionTimeoutMs: config.dbConnectionTimeoutMs,
  });
  const applied = await migrate(db);
  if (applied.length > 0) logger.info({ applied }, "migrations applied");
  const metrics = createMetrics();
  const tokens = createTokenService({ secret: config.jwtSecret, ttlSeconds: config.jwtTtlSeconds });
  const codec = plainCodec;
  // Each capability that reacts to committed events adds its sink here.
  const sinks: EventSink[] = [...(overrides.sinks ?? [])];
  const sink = fanOut(sinks, logger);
  // --- delivery (internal/delivery): tail + gateway streams after commit, read receipts, Subscribe ---
  const deliveryKeys = redisKeys(config.redisPrefix);
  const deliveryRedis = createRedis(config.redisUrl);
  sinks.push(createDeliverySink(deliveryRedis, deliveryKeys));
  const deliveryHub = createDeliveryHub({
    redis: deliveryRedis,
    blockingRedis: createRedis(config.redisUrl, { maxRetriesPerRequest: null }),
    keys: deliveryKeys, db, codec, logger,
  });
  await deliveryHub.start();
  // --- inbox (internal/inbox): one BullMQ job per committed event, enqueued after commit ---
  const inboxQueue = createInboxQueue(config.redisUrl, redisKeys(config.redisPrefix), { attempts: config.inboxAttempts, backoffMs: config.inboxBackoffMs });
  sinks.push(createInboxSink(inboxQueue.queue, logger));
  const notifier: Notifier = overrides.notifier ?? createDeliveryNotifier(deliveryRedis, deliveryKeys);
  const host = new ActorHost({
    db, codec, sink, metrics, logger,
    mailboxLimit: config.actorMailboxLimit,
    maxBatch: config.actorMaxBatch,
    idleMs: config.actorIdleMs,
    maxLive: config.actorMaxLive,
    outboxBody: (e) => e.body,
  });
  const actors: ActorRouter = {
    async tell(conversationId: string, command: ActorCommand) {
      for (let attempt = 1; ; attempt++) {
        try {
          metrics.forwardedCalls.inc({ target: "local" });
          return await host.tell(conversationId, command);
        } catch (error) {
          if (!(error instanceof AppError && error.code === "not_owner") || attempt >= MAX_ROUTING_ATTEMPTS) throw error;
        }
      }
    },
  };
  const api = createApi({ db, tokens, actors, codec, notifier, logger, maxMessageBytes: config.maxMessageBytes });
  const handleRest = restRoutes(api, tokens, config.maxRequestBytes);
  let ready = true;

  const fallback = async (req: Request, res: Response) => {
    try {
      const path = (req.url ?? "/").split("?")[0];
      if (path === "/health") return sendJson(res, 200, { status: "ok", nodeId: config.nodeId });
      if (path === "/ready") {
        const ok = ready && (await pingDatabase(db));
        return sendJson(res, ok ? 200 : 503, { status: ok ? "ready" : "not ready" });
      }
      if (path === "/metrics") {
        res.writeHead(200, { "content-type": metrics.registry.contentType });
        return res.end(await metrics.registry.metrics());
      }
      if (!(await handleRest(req, res))) sendJson(res, 404, { error: { code: "not_found", message: "no such route" } });
    } catch (error) {
      if (AppError.from(error).code === "internal") logger.error({ err: error, url: req.url }, "rest call failed");
      sendError(res, error);
    }
  };
  const connectHandler = connectNodeAdapter({
    routes: connectRoutes(api, tokens, createEventService(deliveryHub)),
    interceptors: [errorInterceptor(logger, metrics)],
    readMaxBytes: config.maxRequestBytes,
    fallback: (req, res) => void fallback(req, res as Response),
  });
  const server = await serveHttp(
    (req, res) => {
      if (applyCors(req, res, config.corsOrigins)) return;
      connectHandler(req, res);
    },
    { host: config.bindHost, port: config.nodePort },
  );
  logger.info({ port: server.port, nodeId: config.nodeId }, "chat-node listening");

  return {
    port: server.port,
    close: () =>
      closeAll([
        () => { ready = false; },
        () => server.close(),
        () => host.close(),
        () => deliveryHub.close(),
        () => inboxQueue.close(),
        () => deliveryRedis.quit(),
        () => db.end(),
      ]),
  };
}

