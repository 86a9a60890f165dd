/**
 * Presence: who is online, per device, in Redis.
 *
 * - A device (or a gateway WebSocket connection, via `reportConnection`) is live for
 *   CHAT_PRESENCE_TTL_MS after its last beat. A user is online iff any device is live, and turns
 *   offline only CHAT_PRESENCE_GRACE_MS after the last one expired or disconnected, so several
 *   devices or a quick reconnect never flap.
 * - Transitions are written atomically (Lua) to the stream `presenceChanges`; the presence
 *   service relays them: coalesced per user, a `presence.user.changed` outbox row (key = user id),
 *   and a message on the pub/sub channel `redisKeys(prefix).presenceChannel`.
 *
 * Channel message (JSON, see `PresenceChange`):
 *   {"v":1,"userId":"<uuid>","status":"online"|"offline","lastSeenMs":<epoch ms>,
 *    "changedAtMs":<epoch ms>,"audience":["<uuid>", …]}
 * `audience` = users sharing at least one conversation with userId. A gateway wires it with:
 *   const unsubscribe = await subscribePresence(redis, keys, (c) => {
 *     for (const socket of socketsOf(c.audience)) socket.send({ type: "presence", … });
 *   });
 * and reports its sockets with `tracker.reportConnection(userId, connectionId, true)` on open
 * and about every ttlMs/3 while open, `(…, false)` on close.
 */
export { createPresenceTracker } from "./presence-tracker.js";
export type { PresenceTracker, PresenceTrackerOptions, PresenceStatus, UserPresence } from "./presence-tracker.js";
export { subscribePresence, createPresenceRelay, MAX_PRESENCE_AUDIENCE } from "./presence-events.js";
export type { PresenceChange } from "./presence-events.js";
export { createPresenceApi, MAX_BATCH_USERS } from "./presence-api.js";
