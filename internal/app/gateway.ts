import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { BodyCodec } from "../actor/index.js";
import { messageCodecFromConfig } from "../crypto/index.js";
import { createPresenceTracker, subscribePresence } from "../presence/index.js";
import { PresenceStatus } from "../gen/chat/v1/events_pb.js";
import { createTokenService } from "../auth/index.js";
import type { Config } from "../config/index.js";
import { createDeliveryHub, ephemeralEvent } from "../delivery/index.js";
import { createChatApiClient, createGatewayMetrics, startGatewayServer } from "../gateway/index.js";
import { createRedis, redisKeys } from "../redis/index.js";
import { pingDatabase } from "../storage/index.js";
import type { Logger } from "../telemetry/index.js";
import { closeAll } from "./run-process.js";
import { openDatabase } from "./open-database.js";

export type Gateway = { port: number; hubId: string; close(): Promise<void> };

/**
 * A WebSocket gateway: a delivery hub (its inbound Redis stream + interest sets) behind the `ws`
 * server. Shutdown order: drain sockets in jittered batches (4100), then the hub, Redis, database.
 */
export async function startGateway(config: Config, logger: Logger, overrides: { codec?: BodyCodec } = {}): Promise<Gateway> {
  const db = await openDatabase(config, logger);
  const keys = redisKeys(config.redisPrefix);
  const redis = createRedis(config.redisUrl);
  const metrics = createGatewayMetrics();
  const hub = createDeliveryHub({
    redis,
    blockingRedis: createRedis(config.redisUrl, { maxRetriesPerRequest: null }),
    keys,
    db,
    // Bodies read back from PostgreSQL may be sealed; the codec opens them.
    codec: overrides.codec ?? messageCodecFromConfig(config),
    logger,
    hubId: `gw-${hostname()}-${config.gatewayPort}-${randomBytes(4).toString("hex")}`,
    onDelivered: (source) => metrics.delivered.inc({ source }),
  });
  await hub.start();
  const presence = createPresenceTracker({ redis, keys, ttlMs: config.presenceTtlMs, graceMs: config.presenceGraceMs });
  const server = await startGatewayServer({
    hub,
    tokens: createTokenService({ secret: config.jwtSecret, ttlSeconds: config.jwtTtlSeconds }),
    api: createChatApiClient(config.gatewayApiUrls),
    metrics,
    logger,
    host: config.bindHost,
    port: config.gatewayPort,
    corsOrigins: config.corsOrigins,
    limits: { framesPerSecond: config.rateLimit.frames.perSecond, frameBurst: config.rateLimit.frames.burst },
    presence: { report: (userId, connectionId, alive) => presence.reportConnection(userId, connectionId, alive), refreshMs: Math.max(1_000, Math.floor(config.presenceTtlMs / 3)) },
    ready: async () => redis.status === "ready" && (await pingDatabase(db)),
  });
  // Presence changes reach the sockets of users who share a conversation with the changed user.
  const unsubscribePresence = await subscribePresence(redis, keys, (change) =>
    server.notifyUsers(change.audience, ephemeralEvent("", {
      case: "presenceChanged",
      value: { userId: change.userId, status: change.status === "online" ? PresenceStatus.ONLINE : PresenceStatus.OFFLINE, lastSeenMs: BigInt(change.lastSeenMs) },
    })));
  logger.info({ port: server.port, hubId: hub.hubId }, "gateway listening");
  return {
    port: server.port,
    hubId: hub.hubId,
    close: () => closeAll([() => server.drain(), () => unsubscribePresence(), () => hub.close(), () => redis.quit(), () => db.end()]),
  };
}
