import { createHash } from "node:crypto";
import type { Redis, RedisKeys } from "../redis/index.js";
import type { HubEvent } from "./event-codec.js";

/**
 * Appends a conversation's events to its tail stream and to the inbound stream of every hub that
 * registered interest in it, in one round trip (the script is atomic, so a hub that registered
 * interest before the call gets every event the tail gets from then on: join reads the tail after
 * registering and misses nothing).
 *
 * KEYS[1] tail stream of the conversation, KEYS[2] interest sorted set (member hubId, score expiry ms)
 * ARGV[1] now (ms), ARGV[2] tail MAXLEN, ARGV[3] inbox MAXLEN, ARGV[4] inbox key prefix,
 * ARGV[5] conversation id, ARGV[6] tail/inbox TTL (ms), then pairs (seq, payload); seq "0" = ephemeral
 * (not written to the tail). A tail XADD whose id is not above the top (a late publisher after a
 * newer owner already appended) is skipped: readers see a hole and fill it from PostgreSQL.
 * Inbox keys are derived from hub ids inside the script, so this needs a single Redis (not Cluster).
 * Returns the number of hubs the events went to.
 */
const SCRIPT = `
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. now)
local hubs = redis.call('ZRANGE', KEYS[2], 0, -1)
local wroteTail = false
for i = 7, #ARGV, 2 do
  local seq = ARGV[i]
  if seq ~= '0' then
    local r = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'c', ARGV[5], 's', seq, 'p', ARGV[i + 1])
    if type(r) ~= 'table' or not r.err then wroteTail = true end
  end
  for _, hub in ipairs(hubs) do
    redis.call('XADD', ARGV[4] .. hub, 'MAXLEN', '~', ARGV[3], '*', 'c', ARGV[5], 's', seq, 'p', ARGV[i + 1])
  end
end
if wroteTail then redis.call('PEXPIRE', KEYS[1], ARGV[6]) end
for _, hub in ipairs(hubs) do redis.call('PEXPIRE', ARGV[4] .. hub, ARGV[6]) end
return #hubs
`;
const SHA = createHash("sha1").update(SCRIPT).digest("hex");

export type FanOutOptions = {
  /** Entries kept per conversation tail (approximate, MAXLEN ~). Default 1000. */
  tailMaxLen?: number;
  /** Entries kept per hub inbox (approximate). Default 100000. */
  inboxMaxLen?: number;
  /** Idle tails and abandoned inboxes expire after this long. Default 24 h. */
  streamTtlMs?: number;
};

export type FanOut = (conversationId: string, events: HubEvent[]) => Promise<number>;

export function createFanOut(redis: Redis, keys: RedisKeys, options: FanOutOptions = {}): FanOut {
  const tailMaxLen = String(options.tailMaxLen ?? 1000);
  const inboxMaxLen = String(options.inboxMaxLen ?? 100_000);
  const ttl = String(options.streamTtlMs ?? 24 * 3600_000);
  return async (conversationId, events) => {
    if (events.length === 0) return 0;
    const args: (string | Buffer)[] = [
      keys.deliveryTail(conversationId), keys.deliveryInterest(conversationId),
      String(Date.now()), tailMaxLen, inboxMaxLen, keys.deliveryInboxPrefix, conversationId, ttl,
    ];
    for (const e of events) args.push(e.seq.toString(), Buffer.from(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength));
    try {
      return Number(await redis.call("EVALSHA", SHA, "2", ...args));
    } catch (error) {
      if (!String((error as Error).message).includes("NOSCRIPT")) throw error;
      return Number(await redis.call("EVAL", SCRIPT, "2", ...args));
    }
  };
}
