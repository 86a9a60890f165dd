import assert from "node:assert/strict";
import { test } from "node:test";
import { createTokenService } from "./index.js";

const secret = "a-test-secret-that-is-long-enough-0123456789";

test("issued tokens verify (also from the cache); tampered and foreign ones never do", async () => {
  const tokens = createTokenService({ secret, ttlSeconds: 60 });
  const { token } = await tokens.issue({ id: "6f1c3a9e-0000-4000-8000-000000000001", username: "alice" });
  const first = await tokens.verify(token);
  const second = await tokens.verify(token);
  assert.deepEqual(second, first);
  assert.equal(first.username, "alice");
  const [h, p, s] = token.split(".");
  const c = s!.at(-2)!;
  const flipped = `${h}.${p}.${s!.slice(0, -2)}${c === "A" ? "B" : "A"}${s!.slice(-1)}`;
  assert.notEqual(flipped, token);
  await assert.rejects(tokens.verify(flipped), (e: any) => e.code === "unauthenticated");
  const other = createTokenService({ secret: `${secret}-other`, ttlSeconds: 60 });
  await assert.rejects(other.verify(token), (e: any) => e.code === "unauthenticated", "a cache is per secret");
});

test("a cached token stops working at its expiry", async () => {
  const tokens = createTokenService({ secret, ttlSeconds: 60 });
  const { token, expiresAtMs } = await tokens.issue({ id: "6f1c3a9e-0000-4000-8000-000000000002", username: "bob" });
  await tokens.verify(token);
  const realNow = Date.now;
  Date.now = () => expiresAtMs + 10_000;
  try {
    await assert.rejects(tokens.verify(token), (e: any) => e.code === "unauthenticated" && /expired/.test(e.message));
  } finally {
    Date.now = realNow;
  }
});
