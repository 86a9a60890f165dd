import { create } from "@bufbuild/protobuf";
import { SubscribeResponseSchema, type SubscribeRequest, type SubscribeResponse } from "../gen/chat/v1/event_service_pb.js";
import type { Principal } from "../auth/index.js";
import { AppError, invalidArgument } from "../errors/index.js";
import type { HubEvent } from "./event-codec.js";
import type { DeliveryHub, Subscription } from "./hub.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export type EventServiceOptions = {
  /** Conversations per Subscribe call at most. Default 500. */
  maxConversations?: number;
  /** Events queued for a slow reader before the stream ends with RESOURCE_EXHAUSTED. Default 10000. */
  maxQueuedEvents?: number;
};

/**
 * chat.v1.EventService/Subscribe on a delivery hub: the same join/replay/live/gap-fill code as the
 * WebSocket gateway, behind a bounded queue. Replay waits while the queue is half full; live
 * events over the bound end the stream with RESOURCE_EXHAUSTED (resubscribe with last seqs);
 * ephemeral events are dropped first.
 */
export function createEventService(hub: DeliveryHub, options: EventServiceOptions = {}) {
  const maxConversations = options.maxConversations ?? 500;
  const maxQueued = options.maxQueuedEvents ?? 10_000;
  return {
    async *subscribe(p: Principal, req: SubscribeRequest, signal: AbortSignal): AsyncIterable<SubscribeResponse> {
      const ids = [...new Set(req.conversationIds.map((id) => id.toLowerCase()))];
      if (ids.length === 0 || ids.length > maxConversations) {
        throw invalidArgument("conversation_ids", `give 1-${maxConversations} conversation ids`);
      }
      for (const id of ids) if (!UUID.test(id)) throw invalidArgument("conversation_ids", "conversation_ids must be UUIDs");
      const lastSeqs = new Map(Object.entries(req.lastSeqs).map(([k, v]) => [k.toLowerCase(), v]));
      const queue: HubEvent[] = [];
      let failure: AppError | null = null;
      let wake: (() => void) | null = null;
      const notify = () => { const w = wake; wake = null; w?.(); };
      const onAbort = () => notify();
      signal.addEventListener("abort", onAbort);
      const subs: Subscription[] = [];
      const fail = (error: AppError) => { failure ??= error; notify(); };
      let finished = false;
      // Join every conversation concurrently; replay pages flow through the queue while joining
      // (the main loop below drains it, so replay backpressure cannot deadlock the join).
      const joining = Promise.all(ids.map(async (id) => {
        const lastSeq = lastSeqs.get(id);
        const sub = await hub.subscribe(id, lastSeq === undefined ? null : lastSeq, {
          userId: p.userId,
          onEvent: (e) => {
            if (queue.length >= maxQueued) fail(new AppError("resource_exhausted", "subscriber is too slow; resubscribe with last seqs"));
            else { queue.push(e); notify(); }
          },
          onEphemeral: (e) => { if (queue.length < maxQueued / 2) { queue.push(e); notify(); } },
          onEnd: (reason) => { if (reason === "failed") fail(new AppError("unavailable", "delivery interrupted; resubscribe with last seqs")); },
          writable: async () => {
            while (queue.length >= maxQueued / 2 && !signal.aborted && failure === null && !finished) await new Promise((r) => setTimeout(r, 10));
          },
        });
        if (finished) sub.close();
        else subs.push(sub);
      }));
      joining.catch((error: unknown) => fail(AppError.from(error)));
      try {
        for (;;) {
          if (failure) throw failure;
          if (signal.aborted) return;
          const next = queue.shift();
          if (next) {
            yield create(SubscribeResponseSchema, { event: next.event });
            continue;
          }
          await new Promise<void>((resolve) => { wake = resolve; });
        }
      } finally {
        finished = true;
        signal.removeEventListener("abort", onAbort);
        for (const s of subs) s.close();
      }
    },
  };
}

export type EventService = ReturnType<typeof createEventService>;
