import { createContextValues } from "@connectrpc/connect";
import { ActorHost, createGroupCommitter, type EventSink } from "../actor/index.js";
import { createOutboxBody, messageCodecFromConfig } from "../crypto/index.js";
import { clientAddress, clientAddressKey, createRateLimits } from "../ratelimit/index.js";
import { ClusterRouter, Membership, serveActorService } from "../cluster/index.js";
import { connectRoutes, createApi, restRoutes, type ActorRouter, type Notifier } from "../api/index.js";
import { createTokenService } from "../auth/index.js";
import type { Config } from "../config/index.js";
import { pingDatabase } from "../storage/index.js";
import { createDeliveryHub, createDeliveryNotifier, createDeliverySink, createEventService } from "../delivery/index.js";
import { createRedis, redisKeys } from "../redis/index.js";
import { createInboxQueue, createInboxSink } from "../inbox/index.js";
import { createMetrics, type Logger } from "../telemetry/index.js";
import { closeAll } from "./run-process.js";
import { openDatabase } from "./open-database.js";
import { serveApi } from "./serve-api.js";

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
  const db = await openDatabase(config, logger);
  const metrics = createMetrics();
  const tokens = createTokenService({ secret: config.jwtSecret, ttlSeconds: config.jwtTtlSeconds });
  // AES-256-GCM at rest when CHAT_ENCRYPTION_ENABLED; opens plaintext and sealed rows either way (internal/crypto).
  const codec = messageCodecFromConfig(config);
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
  // --- cluster (internal/cluster): lease membership, rendezvous placement, gRPC forwarding ---
  const clusterRedis = createRedis(config.redisUrl);
  const clusterSubscriber = createRedis(config.redisUrl, { maxRetriesPerRequest: null });
  let router: ClusterRouter | undefined;
  const host = new ActorHost({
    db, codec, sink, metrics, logger,
    committer: createGroupCommitter(db, metrics, { parallel: config.actorCommitParallel, maxEvents: config.actorMaxBatch * 8 }),
    mailboxLimit: config.actorMailboxLimit,
    maxBatch: config.actorMaxBatch,
    idleMs: config.actorIdleMs,
    maxLive: config.actorMaxLive,
    outboxBody: createOutboxBody(codec, { plaintextBodies: config.kafkaPlaintextBodies }),
    owns: (conversationId) => router?.ownsLocally(conversationId) ?? false,
  });
  const actorService = await serveActorService((req) => router!.handleForwarded(req), config.bindHost, config.nodeGrpcPort);
  const advertiseHost = config.bindHost === "0.0.0.0" || config.bindHost === "::" ? "127.0.0.1" : config.bindHost;
  // apiUrl is filled in once the public port is bound (it may be 0 = any free port).
  const self = {
    nodeId: config.nodeId,
    grpcAddress: config.nodeGrpcAdvertise || `${advertiseHost}:${actorService.port}`,
    apiUrl: "",
    startedAtMs: Date.now(),
  };
  const membership = new Membership({
    redis: clusterRedis,
    subscriber: clusterSubscriber,
    keys: redisKeys(config.redisPrefix),
    self,
    logger,
    leaseTtlMs: config.clusterLeaseTtlMs,
    heartbeatMs: config.clusterHeartbeatMs,
    pollMs: config.clusterPollMs,
    liveActors: () => host.liveCount,
  });
  router = new ClusterRouter({
    nodeId: config.nodeId, membership, actors: host, logger, metrics,
    forwardDeadlineMs: config.clusterForwardDeadlineMs,
    routeTimeoutMs: config.clusterRouteTimeoutMs,
  });
  const actors: ActorRouter = router;
  let joined = false;
  const api = createApi({ db, tokens, actors, codec, notifier, logger, maxMessageBytes: config.maxMessageBytes });
  // --- rate limits (internal/ratelimit): shared GCRA budgets in Redis, checked before work is queued ---
  const limits = createRateLimits({ settings: config.rateLimit, redisUrl: config.redisUrl, keys: redisKeys(config.redisPrefix), logger });
  const handleRest = restRoutes(api, tokens, config.maxRequestBytes, limits, config.trustedProxies);
  const server = await serveApi({
    config, logger, metrics,
    port: config.nodePort,
    routes: connectRoutes(api, tokens, createEventService(deliveryHub), limits),
    contextValues: (req) => createContextValues().set(clientAddressKey, clientAddress(req, config.trustedProxies)),
    handleRest,
    health: { nodeId: config.nodeId },
    // Ready once this node has joined the ring and while PostgreSQL answers. A later Redis outage
    // does not make it unready: reads keep working, sends answer UNAVAILABLE (ARCHITECTURE.md).
    ready: async () => joined && (await pingDatabase(db)),
  });
  self.apiUrl = config.nodeApiAdvertise || `http://${advertiseHost}:${server.port}`;
  await membership.start();
  joined = true;
  logger.info({ port: server.port, nodeId: config.nodeId }, "chat-node listening");

  return {
    port: server.port,
    close: () =>
      closeAll([
        () => server.stopReady(),
        // Leave the ring first: other nodes take this node's conversations over at once.
        () => membership.leave(),
        () => server.close(config.shutdownGraceMs),
        () => host.close(),
        () => actorService.close(),
        () => router?.close(),
        () => clusterSubscriber.quit(),
        () => clusterRedis.quit(),
        () => deliveryHub.close(),
        () => inboxQueue.close(),
        () => deliveryRedis.quit(),
        () => limits.close(),
        () => db.end(),
      ]),
  };
}

