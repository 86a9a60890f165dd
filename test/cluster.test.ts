import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { after, before, test } from "node:test";
import { ConversationKind } from "../internal/gen/chat/v1/common_pb.js";
import { Rendezvous } from "../internal/cluster/index.js";
import { createRedis, redisKeys, type Redis } from "../internal/redis/index.js";
import {
  checkInvariants,
  createTestEnv,
  eventually,
  freePort,
  percentile,
  registerUser,
  runSendLoad,
  serviceEnv,
  startService,
  type AckedSend,
  type LoadConversation,
  type LoadResult,
  type ServiceProcess,
  type TestEnv,
} from "./support/index.js";

const LEASE_TTL_MS = 2_000;
const nodes = new Map<string, ServiceProcess>();
let env: TestEnv;
let redis: Redis;
let conversations: LoadConversation[];

async function startNode(id: string): Promise<ServiceProcess> {
  const port = await freePort();
  const service = await startService("chat-node", {
    name: `cluster-${id}`,
    port,
    env: serviceEnv(env, {
      CHAT_NODE_ID: id,
      CHAT_NODE_PORT: String(port),
      CHAT_NODE_GRPC_PORT: String(await freePort()),
      CHAT_CLUSTER_LEASE_TTL_MS: String(LEASE_TTL_MS),
      CHAT_CLUSTER_HEARTBEAT_MS: "400",
      CHAT_CLUSTER_POLL_MS: "200",
      CHAT_SHUTDOWN_GRACE_MS: "3000",
      CHAT_DB_POOL_SIZE: "8",
      CHAT_RATELIMIT_ENABLED: "false",
    }),
  });
  nodes.set(id, service);
  return service;
}

const urls = () => [...nodes.values()].map((n) => `http://127.0.0.1:${n.port}`);
const members = async () => Object.keys(await redis.hgetall(redisKeys(env.redisPrefix).members)).sort();
const waitForMembers = (ids: string[]) =>
  eventually(async () => JSON.stringify(await members()) === JSON.stringify([...ids].sort()), { timeoutMs: 15_000 });

before(async () => {
  env = await createTestEnv();
  redis = createRedis(env.config.redisUrl);
  for (const id of ["n1", "n2", "n3"]) await startNode(id);
  await waitForMembers(["n1", "n2", "n3"]);
  const base = urls()[0]!;
  const users = await Promise.all(Array.from({ length: 20 }, () => registerUser(base, "cl")));
  conversations = [];
  for (let i = 0; i < 200; i++) {
    const owner = users[i % users.length]!;
    const other = users[(i * 7 + 3) % users.length]!;
    const res = await owner.api.conversations.createConversation({ kind: ConversationKind.GROUP, title: `c${i}`, memberIds: [other.id] });
    conversations.push({ id: res.conversation!.id, members: [owner, other].map((u) => ({ id: u.id, token: u.token })) });
  }
});

after(async () => {
  await Promise.all([...nodes.values()].map((n) => n.stop(3_000)));
  await redis?.quit();
  await env?.close();
});

/**
 * Probes conversations owned by `victim` from the moment of a fault: each probe sends (retrying
 * with one idempotency key) until it succeeds. Returns the time each took to succeed.
 */
async function probeRecovery(victim: string, memberIds: string[], faultAtMs: number, acked: AckedSend[]): Promise<number[]> {
  const ring = new Rendezvous(memberIds);
  const owned = conversations.filter((c) => ring.owner(c.id) === victim).slice(0, 8);
  assert.ok(owned.length > 0);
  return Promise.all(owned.map(async (c, i) => {
    const done = new AbortController();
    let recoveredAt = 0;
    await runSendLoad({
      nodes: () => urls().filter((u) => !u.endsWith(`:${nodes.get(victim)!.port}`)),
      conversations: [c],
      workers: 1,
      signal: done.signal,
      retryBudgetMs: 30_000,
      onAck: (ack) => {
        recoveredAt = ack.atMs;
        acked.push({ ...ack, idempotencyKey: ack.idempotencyKey });
        done.abort();
      },
      keyPrefix: `probe-${victim}-${faultAtMs}-${i}`,
    });
    return recoveredAt - faultAtMs;
  }));
}

async function withLoad(fault: (acked: AckedSend[]) => Promise<void>): Promise<LoadResult> {
  const stop = new AbortController();
  const extra: AckedSend[] = [];
  const running = runSendLoad({ nodes: urls, conversations, workers: 12, signal: stop.signal });
  await new Promise((r) => setTimeout(r, 1_500));
  await fault(extra);
  await new Promise((r) => setTimeout(r, 1_500));
  stop.abort();
  const result = await running;
  result.acked.push(...extra);
  return result;
}

async function assertInvariants(result: LoadResult, label: string) {
  assert.deepEqual(result.failed, [], `${label}: every send eventually succeeded`);
  assert.ok(result.acked.length > 100, `${label}: load ran (${result.acked.length} acks)`);
  const problems = await checkInvariants(env.db, result.acked);
  assert.deepEqual(problems.slice(0, 10), [], `${label}: invariants hold`);
  console.log(`${label}: ${result.acked.length} acked, ${result.retries} client retries, p50 ${percentile(result.latenciesMs, 50)} ms, p99 ${percentile(result.latenciesMs, 99)} ms`);
}

test("kill -9 the owner of busy conversations mid-load: nothing lost, service back within lease TTL + 2 s", async () => {
  let recovery: number[] = [];
  const result = await withLoad(async (acked) => {
    const ids = await members();
    const victim = "n2";
    const faultAt = Date.now();
    nodes.get(victim)!.signal("SIGKILL");
    await nodes.get(victim)!.exited;
    recovery = await probeRecovery(victim, ids, faultAt, acked);
    nodes.delete(victim);
    await startNode(victim);
    await waitForMembers(ids);
  });
  console.log(`kill -9 recovery ms: ${recovery.join(", ")}`);
  assert.ok(Math.max(...recovery) <= LEASE_TTL_MS + 2_000, `recovered in ${Math.max(...recovery)} ms`);
  await assertInvariants(result, "kill -9");
});

test("SIGSTOP a node past its lease, others take over, SIGCONT: the stale owner is fenced", async () => {
  const n3Log = new URL("../test-results/logs/cluster-n3.log", import.meta.url);
  const logBefore = statSync(n3Log).size; // the log file is appended to across runs
  let recovery: number[] = [];
  const result = await withLoad(async (acked) => {
    const ids = await members();
    const victim = "n3";
    const faultAt = Date.now();
    nodes.get(victim)!.signal("SIGSTOP");
    recovery = await probeRecovery(victim, ids, faultAt, acked);
    await waitForMembers(ids.filter((id) => id !== victim));
    await new Promise((r) => setTimeout(r, 500));
    nodes.get(victim)!.signal("SIGCONT");
    await waitForMembers(ids);
  });
  console.log(`SIGSTOP recovery ms: ${recovery.join(", ")}`);
  assert.ok(Math.max(...recovery) <= LEASE_TTL_MS + 2_000, `recovered in ${Math.max(...recovery)} ms`);
  await assertInvariants(result, "SIGSTOP");
  // The resumed node learnt that its lease had lapsed (so it released everything before owning again).
  assert.match(readFileSync(n3Log).subarray(logBefore).toString("utf8"), /lease had lapsed/);
});

test("add a 4th node mid-load, then SIGTERM one: no failed call beyond bounded retries", async () => {
  const result = await withLoad(async () => {
    await startNode("n4");
    await waitForMembers(["n1", "n2", "n3", "n4"]);
    await new Promise((r) => setTimeout(r, 1_000));
    const leaving = nodes.get("n1")!;
    const stopped = leaving.stop(10_000);
    nodes.delete("n1");
    await stopped;
    assert.equal(await leaving.exited, 0, "graceful shutdown exits 0");
    await waitForMembers(["n2", "n3", "n4"]);
  });
  await assertInvariants(result, "join+leave");
  const forwarded = await fetch(`http://127.0.0.1:${nodes.get("n4")!.port}/metrics`).then((r) => r.text());
  assert.match(forwarded, /chat_forwarded_calls_total\{target="remote"\} [1-9]/);
});

test("chatctl cluster status shows every member with its lease, ring share and live actors", async () => {
  const { execFile } = await import("node:child_process");
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ["--import", "tsx", "cmd/chatctl/main.ts", "cluster", "status"], {
      cwd: new URL("..", import.meta.url).pathname,
      env: { PATH: process.env.PATH ?? "", REDIS_URL: env.config.redisUrl, CHAT_REDIS_PREFIX: env.redisPrefix, DATABASE_URL: env.databaseUrl },
    }, (err, stdout) => (err ? reject(err) : resolve(stdout))));
  const rows = out.split("\n").filter((l) => /^n\d\t/.test(l));
  assert.deepEqual(rows.map((r) => r.split("\t")[0]).sort(), [...nodes.keys()].sort());
  for (const row of rows) {
    const [, leaseLeft, share, liveActors] = row.split("\t");
    assert.ok(Number(leaseLeft) > 0 && Number(leaseLeft) <= LEASE_TTL_MS, row);
    assert.ok(Math.abs(parseFloat(share!) - 100 / rows.length) < 5, row);
    assert.ok(Number(liveActors) >= 0, row);
  }
  assert.ok(rows.some((r) => Number(r.split("\t")[3]) > 0), "some node hosts live actors after the load");
});
