import assert from "node:assert/strict";
import { test } from "node:test";
import { createFrameLimiter } from "./frame-limiter.js";
import { parseClientFrame } from "./frames.js";
import { createTypingThrottle } from "./typing-throttle.js";

test("typing throttle: one forward per interval, state changes at once, expiry emits false", async () => {
  let t = 0;
  const out: boolean[] = [];
  const th = createTypingThrottle({ intervalMs: 2000, ttlMs: 50, now: () => t, forward: (_c, _u, typing) => out.push(typing) });
  assert.equal(th.offer("c", "u", true), true);
  t = 500;
  assert.equal(th.offer("c", "u", true), false);
  t = 2100;
  assert.equal(th.offer("c", "u", true), true);
  assert.equal(th.offer("c", "u", false), true);
  assert.equal(th.offer("c", "u", false), false);
  th.offer("c", "u", true);
  await new Promise((r) => setTimeout(r, 80));
  assert.deepEqual(out, [true, true, false, true, false]);
  assert.equal(th.size, 0);
  th.close();
});

test("frame limiter: burst then refill", () => {
  let t = 0;
  const l = createFrameLimiter(10, 3, () => t);
  assert.deepEqual([l.take(), l.take(), l.take(), l.take()], [true, true, true, false]);
  t = 100;
  assert.equal(l.take(), true);
});

test("client frames are validated", () => {
  const id = "0b6f3c2e-8f7a-4a57-9d7e-5b8e0f0a1b2c";
  assert.deepEqual(parseClientFrame(JSON.stringify({ type: "join", conversationId: id, lastSeq: "12" })), { type: "join", conversationId: id, lastSeq: 12n, ref: undefined });
  assert.equal(parseClientFrame(JSON.stringify({ type: "join", conversationId: id })).type, "join");
  const join = (lastSeq: unknown) => JSON.stringify({ type: "join", conversationId: id, lastSeq });
  const bads = [
    "{", "[]", "null", "42", '{"type":"join"}', '{"type":"nope"}', `{"type":"read","conversationId":"${id}"}`,
    join("-1"), join(1.5), join("1e3"), join("99999999999999999999"), join({}), join(true),
    JSON.stringify({ type: "send", conversationId: id, body: 7 }),
    JSON.stringify({ type: "send", conversationId: id }),
    JSON.stringify({ type: "typing", conversationId: "not-a-uuid", typing: true }),
  ];
  for (const bad of bads) {
    assert.throws(() => parseClientFrame(bad), (e: { code?: string }) => e.code === "invalid_argument", bad);
  }
});
