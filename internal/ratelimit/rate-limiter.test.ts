import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as net from "node:net";
import { after, test } from "node:test";
import { loadConfig } from "../config/index.js";
import { redisKeys } from "../redis/index.js";
import { createLogger } from "../telemetry/index.js";
import type { Budget } from "./gcra.js";
import { createRedisRateLimiter, type RateLimiter } from "./rate-limiter.js";
import { createRateLimits } from "./rate-limits.js";

const config = loadConfig({ ...process.env, LOG_LEVEL: "silent" });
const keys = redisKeys(`rl${randomBytes(4).toString("hex")}`);
const logger = createLogger("test", "silent");
const open: RateLimiter[] = [];
const limiter = (redisUrl = config.redisUrl, extra: Partial<Parameters<typeof createRedisRateLimiter>[0]> = {}) => {
  const l = createRedisRateLimiter({ redisUrl, keys, timeoutMs: 200, logger, ...extra });
  open.push(l);
  return l;
};
after(async () => { for (const l of open) await l.close(); });

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

test("shared budget: burst, then refusals with retry hints; two limiters see one budget", async () => {
  const a = limiter(), b = limiter();
  const budget: Budget = { name: "shared", perSecond: 1, burst: 5 };
  const results = [];
  for (let i = 0; i < 8; i++) results.push(await (i % 2 ? a : b).check(budget, "user-1"));
  assert.deepEqual(results.map((r) => r.allowed), [true, true, true, true, true, false, false, false]);
  assert.deepEqual(results.slice(0, 5).map((r) => r.remaining), [4, 3, 2, 1, 0]);
  assert.ok(results.every((r) => r.source === "redis"));
  assert.ok(results[5]!.retryAfterMs > 0 && results[5]!.retryAfterMs <= 1000);
  assert.equal((await a.check(budget, "user-2")).allowed, true, "subjects are independent");
});

test("N processes sharing a budget never exceed burst + rate x time", async () => {
  const budget: Budget = { name: "multi", perSecond: 50, burst: 20 };
  const url = new URL("./rate-limiter.ts", import.meta.url).href;
  const code = `
    import { createRedisRateLimiter } from ${JSON.stringify(url)};
    import { redisKeys } from ${JSON.stringify(new URL("../redis/index.ts", import.meta.url).href)};
    import { createLogger } from ${JSON.stringify(new URL("../telemetry/index.ts", import.meta.url).href)};
    const l = createRedisRateLimiter({ redisUrl: process.env.R_URL, keys: redisKeys(process.env.R_PREFIX), timeoutMs: 1000, logger: createLogger("c", "silent") });
    const budget = JSON.parse(process.env.R_BUDGET);
    let allowed = 0, refused = 0, other = 0;
    await new Promise((r) => setTimeout(r, Number(process.env.R_START) - Date.now()));
    const end = Number(process.env.R_START) + 1500;
    while (Date.now() < end) {
      const d = await l.check(budget, "hot");
      if (d.source !== "redis") other++; else if (d.allowed) allowed++; else refused++;
    }
    process.stdout.write(JSON.stringify({ allowed, refused, other }));
    await l.close();
  `;
  const N = 4;
  const start = Date.now() + 2500;
  const runs = await Promise.all(Array.from({ length: N }, () => new Promise<{ allowed: number; refused: number; other: number }>((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
      env: { ...process.env, R_URL: config.redisUrl, R_PREFIX: keys.prefix, R_BUDGET: JSON.stringify(budget), R_START: String(start) },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`child exited ${code}`))));
  })));
  const elapsedS = (Date.now() - start) / 1000;
  const allowed = runs.reduce((s, r) => s + r.allowed, 0);
  const refused = runs.reduce((s, r) => s + r.refused, 0);
  assert.equal(runs.reduce((s, r) => s + r.other, 0), 0, "every decision came from redis");
  const bound = budget.burst + budget.perSecond * elapsedS;
  console.log(`rate limit: ${N} processes, ${allowed} allowed, ${refused} refused in ${elapsedS.toFixed(2)}s; bound ${bound.toFixed(1)}`);
  assert.ok(allowed <= bound, `${allowed} allowed > bound ${bound}`);
  assert.ok(allowed >= budget.burst + budget.perSecond * 1.0, `the budget was used (${allowed})`);
  assert.ok(refused > allowed, "the processes pushed well past the budget");
});

test("Redis down (closed port): sends fall back to a per-process limiter, auth fails closed; answers are fast", async () => {
  const port = await closedPort();
  const limits = createRateLimits({
    settings: { ...config.rateLimit, enabled: true, send: { perSecond: 1, burst: 3 }, auth: { perSecond: 1, burst: 3 }, redisTimeoutMs: 200, authFailClosed: true },
    redisUrl: `redis://127.0.0.1:${port}`, keys, logger,
  });
  try {
    const started = Date.now();
    for (let i = 0; i < 3; i++) await limits.send("u1");
    await assert.rejects(limits.send("u1"), (e: any) => e.code === "resource_exhausted" && e.details.retryAfterMs > 0);
    await assert.rejects(limits.auth("10.0.0.1"), (e: any) => e.code === "unavailable" && e.details.retryAfterMs === 1000);
    await assert.rejects(limits.login("alice"), (e: any) => e.code === "unavailable");
    assert.ok(Date.now() - started < 2000, `decisions took ${Date.now() - started} ms`);
  } finally {
    await limits.close();
  }
  const open = createRateLimits({
    settings: { ...config.rateLimit, enabled: true, auth: { perSecond: 1, burst: 2 }, authFailClosed: false },
    redisUrl: `redis://127.0.0.1:${port}`, keys, logger,
  });
  try {
    await open.auth("10.0.0.1");
    await open.auth("10.0.0.1");
    await assert.rejects(open.auth("10.0.0.1"), (e: any) => e.code === "resource_exhausted");
  } finally {
    await open.close();
  }
});

test("a Redis that stops answering counts as down after timeoutMs", async () => {
  // A TCP proxy to the real Redis that can freeze (stops forwarding replies).
  const target = new URL(config.redisUrl);
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 6379), target.hostname);
    sockets.add(client).add(upstream);
    client.on("data", (d) => upstream.write(d));
    upstream.on("data", (d) => { if (!frozen) client.write(d); });
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", () => r()));
  const l = limiter(`redis://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`, { timeoutMs: 150 });
  const budget: Budget = { name: "frozen", perSecond: 1, burst: 2 };
  try {
    assert.equal((await l.check(budget, "x")).source, "redis");
    frozen = true;
    const started = Date.now();
    const d = await l.check(budget, "x");
    assert.equal(d.source, "local");
    assert.ok(Date.now() - started < 1000);
  } finally {
    for (const s of sockets) s.destroy();
    proxy.close();
  }
});

test("disabled limits allow everything", async () => {
  const limits = createRateLimits({ settings: { ...config.rateLimit, enabled: false, send: { perSecond: 0.001, burst: 1 } }, redisUrl: config.redisUrl, keys, logger });
  for (let i = 0; i < 5; i++) await limits.send("u");
  await limits.close();
});
