import type { CommittedEvent, EventSink } from "../actor/index.js";
import type { Redis, RedisKeys } from "../redis/index.js";
import { ephemeralEvent, messageEvent } from "./event-codec.js";
import { createFanOut, type FanOutOptions } from "./fan-out.js";

/**
 * The actor's post-commit sink: one pipelined script call per batch appends the events to the
 * conversation's tail (`XADD <tail> MAXLEN ~ N <seq>-0`) and to the inbound stream of every hub
 * (gateway) with subscribers of that conversation. Failures are the caller's to log: subscribers
 * recover missing events from PostgreSQL (DESIGN §2.5), so a lost publish delays, never loses.
 */
export function createDeliverySink(redis: Redis, keys: RedisKeys, options: FanOutOptions = {}): EventSink {
  const fanOut = createFanOut(redis, keys, options);
  return {
    async publish(conversationId: string, events: CommittedEvent[]) {
      await fanOut(conversationId, events.map(messageEvent));
    },
  };
}

/** Read receipts go to the hubs with subscribers of the conversation (its members), as `read:receipt`. */
export function createDeliveryNotifier(redis: Redis, keys: RedisKeys) {
  const fanOut = createFanOut(redis, keys);
  return {
    async readReceipt(conversationId: string, userId: string, lastReadSeq: bigint): Promise<void> {
      await fanOut(conversationId, [ephemeralEvent(conversationId, {
        case: "readReceipt",
        value: { conversationId, userId, lastReadSeq, atMs: BigInt(Date.now()) },
      })]);
    },
  };
}
