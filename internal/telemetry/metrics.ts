import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/** One registry per process so tests that boot several processes in one Node stay independent. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    rpcDuration: new Histogram({
      name: "chat_rpc_duration_seconds",
      help: "Public API call duration by procedure and code.",
      labelNames: ["procedure", "code"] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    actorBatchSize: new Histogram({
      name: "chat_actor_batch_size",
      help: "Commands committed per actor transaction.",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers: [registry],
    }),
    groupCommitConversations: new Histogram({
      name: "chat_group_commit_conversations",
      help: "Conversations (actor batches) committed per transaction.",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: [registry],
    }),
    actorCommitDuration: new Histogram({
      name: "chat_actor_commit_seconds",
      help: "Duration of one group-commit transaction.",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    }),
    actorsLive: new Gauge({ name: "chat_actors_live", help: "Live conversation actors.", registers: [registry] }),
    actorActivations: new Counter({ name: "chat_actor_activations_total", help: "Actor activations (epoch bumps).", registers: [registry] }),
    actorFenced: new Counter({ name: "chat_actor_fenced_total", help: "Commits refused because the epoch moved on.", registers: [registry] }),
    forwardedCalls: new Counter({
      name: "chat_forwarded_calls_total",
      help: "Actor calls by where they ran.",
      labelNames: ["target"] as const,
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
