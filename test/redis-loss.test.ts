import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { after, before, test } from "node:test";
import { ConversationKind } from "../internal/gen/chat/v1/common_pb.js";
import { createRedis, redisKeys, type Redis } from "../internal/redis/index.js";
import {
  checkInvariants,
  createTestEnv,
  eventually,
  freePort,
  percentile,
  portOpen,
  registerUser,
  runSendLoad,
  serviceEnv,
  startService,
  type AckedSend,
  type LoadConversation,
  type ServiceProcess,
  type TestEnv,
} from "./support/index.js";

/**
 * DESIGN §8 "restart Redis (and lose its data)": the chat-nodes run against a Redis of their own
 * (so other suites sharing the machine's Redis are not disturbed), which is killed with -9 mid-load
 * and restarted empty. Redis is a cache and a coordinator, never the record: every acknowledged
 * send must be in PostgreSQL exactly once, and service must come back by itself.
 */
let env: TestEnv;
let redisPort: number;
let redisProcess: ChildProcess | undefined;
let redis: Redis;
const nodes: ServiceProcess[] = [];

async function startRedis(): Promise<void> {
  redisProcess = spawn("redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction"], { stdio: "ignore" });
  await eventually(() => portOpen(redisPort), { timeoutMs: 10_000 });
}

before(async () => {
  env = await createTestEnv();
  redisPort = await freePort();
  await startRedis();
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  redis = createRedis(redisUrl);
  for (const id of ["r1", "r2", "r3"]) {
    const port = await freePort();
    nodes.push(await startService("chat-node", {
      name: `redis-loss-${id}`,
      port,
      env: serviceEnv(env, {
        REDIS_URL: redisUrl, CHAT_NODE_ID: id, CHAT_NODE_PORT: String(port), CHAT_NODE_GRPC_PORT: String(await freePort()),
        CHAT_CLUSTER_LEASE_TTL_MS: "2000", CHAT_CLUSTER_HEARTBEAT_MS: "400", CHAT_CLUSTER_POLL_MS: "200",
        CHAT_RATELIMIT_ENABLED: "false", CHAT_DB_POOL_SIZE: "6",
      }),
    }));
  }
  await eventually(async () => (await redis.hlen(redisKeys(env.redisPrefix).members)) === 3, { timeoutMs: 15_000 });
});

after(async () => {
  await Promise.all(nodes.map((n) => n.stop(3_000)));
  redis?.disconnect();
  redisProcess?.kill("SIGKILL");
  await env?.close();
});

test("Redis killed and restarted empty mid-load: nothing acknowledged is lost, sends resume by themselves", { timeout: 120_000 }, async () => {
  const base = nodes[0]!.url;
  const users = await Promise.all(Array.from({ length: 6 }, () => registerUser(base, "rl")));
  const conversations: LoadConversation[] = [];
  for (let i = 0; i < 40; i++) {
    const owner = users[i % users.length]!;
    const other = users[(i + 1) % users.length]!;
    const res = await owner.api.conversations.createConversation({ kind: ConversationKind.GROUP, title: `r${i}`, memberIds: [other.id] });
    conversations.push({ id: res.conversation!.id, members: [owner, other].map((u) => ({ id: u.id, token: u.token })) });
  }
  const stop = new AbortController();
  let restartedAt = 0;
  const acksAfterRestart: number[] = [];
  const running = runSendLoad({
    nodes: () => nodes.map((n) => n.url),
    conversations,
    workers: 8,
    signal: stop.signal,
    retryBudgetMs: 40_000,
    onAck: (ack) => {
      if (restartedAt > 0 && ack.atMs > restartedAt) acksAfterRestart.push(ack.atMs - restartedAt);
    },
  });
  await new Promise((r) => setTimeout(r, 1_500));
  redisProcess!.kill("SIGKILL");
  await new Promise((r) => setTimeout(r, 2_500));
  await startRedis();
  restartedAt = Date.now();
  await eventually(() => acksAfterRestart.length > 20, { timeoutMs: 30_000 });
  await eventually(async () => (await redis.hlen(redisKeys(env.redisPrefix).members)) === 3, { timeoutMs: 15_000 });
  await new Promise((r) => setTimeout(r, 1_500));
  stop.abort();
  const result = await running;
  const firstAck = Math.min(...acksAfterRestart);
  console.log(`redis loss: ${result.acked.length} acked, ${result.retries} client retries, first ack ${firstAck} ms after the restart, p99 ${percentile(result.latenciesMs, 99)} ms`);
  assert.deepEqual(result.failed, [], "every send eventually succeeded");
  assert.ok(firstAck < 10_000, `sends resumed ${firstAck} ms after Redis came back`);
  const problems = await checkInvariants(env.db, result.acked as AckedSend[]);
  assert.deepEqual(problems.slice(0, 10), []);
});
