import assert from "node:assert/strict";
import { createServer as createHttpServer, type Server } from "node:http";
import { after, before, describe, test } from "node:test";
import { Queue } from "bullmq";
import { InboxService } from "../internal/gen/chat/v1/inbox_pb.js";
import { sql } from "slonik";
import { z } from "zod";
import { startChatNode, type ChatNode } from "../internal/app/index.js";
import { ConversationKind } from "../internal/gen/chat/v1/common_pb.js";
import { inboxJobId, type DeadLetter, type InboxJobData, type Notification } from "../internal/inbox/index.js";
import { createPresenceTracker } from "../internal/presence/index.js";
import { createRedis, redisKeys, type Redis } from "../internal/redis/index.js";
import { createLogger } from "../internal/telemetry/index.js";
import { createTestEnv, eventually, freePort, registerUser, serviceClient, serviceEnv, startService, type ServiceProcess, type TestEnv, type TestUser } from "./support/index.js";

const USERS = 6;
const CONVERSATIONS = 20;
const MESSAGES = 1000;
const SEND_CONCURRENCY = 8;

let env: TestEnv;
let node: ChatNode;
let baseUrl: string;
let redis: Redis;
let queue: Queue<InboxJobData>;
let queueRedis: Redis;
let webhook: Server;
let webhookUrl: string;
const workers = new Set<ServiceProcess>();
const received: Notification[] = [];
const attemptsById = new Map<string, number>();

let workerCount = 0;

/** A real inbox-worker process (`node --import tsx cmd/inbox-worker/main.ts`). */
async function spawnWorker(): Promise<ServiceProcess> {
  const port = await freePort();
  const worker = await startService("inbox-worker", {
    name: `inbox-worker-${++workerCount}`,
    port,
    ready: "none",
    env: serviceEnv(env, {
      CHAT_INBOX_METRICS_PORT: String(port),
      CHAT_INBOX_LOCK_MS: "2000",
      CHAT_INBOX_BACKOFF_MS: "50",
      CHAT_INBOX_ATTEMPTS: "6",
      CHAT_INBOX_RECONCILE_MS: "0",
      CHAT_INBOX_CONCURRENCY: "8",
      CHAT_NOTIFY_WEBHOOK_URL: webhookUrl,
      CHAT_NOTIFY_TIMEOUT_MS: "2000",
    }),
  });
  workers.add(worker);
  void worker.exited.then(() => workers.delete(worker));
  return worker;
}

before(async () => {
  env = await createTestEnv({ CHAT_INBOX_ATTEMPTS: "6", CHAT_INBOX_BACKOFF_MS: "50" });
  node = await startChatNode(env.config, createLogger("test", "silent"));
  baseUrl = `http://127.0.0.1:${node.port}`;
  redis = createRedis(env.config.redisUrl);
  const keys = redisKeys(env.redisPrefix);
  queueRedis = createRedis(env.config.redisUrl);
  queue = new Queue<InboxJobData>(keys.inboxQueue, { connection: queueRedis, prefix: keys.bullPrefix });
  // The webhook answers 503 to the first attempt of every third notification: the sink retries.
  webhook = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const n = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Notification;
      const attempt = (attemptsById.get(n.id) ?? 0) + 1;
      attemptsById.set(n.id, attempt);
      if (attempt === 1 && Number.parseInt(n.messageId.slice(0, 2), 16) % 3 === 0) {
        res.writeHead(503).end();
        return;
      }
      assert.equal(req.headers["idempotency-key"], n.id);
      received.push(n);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => webhook.listen(0, "127.0.0.1", () => r()));
  webhookUrl = `http://127.0.0.1:${(webhook.address() as { port: number }).port}/notify`;
});

after(async () => {
  await Promise.all([...workers].map((w) => w.kill()));
  await queue?.close();
  queueRedis?.disconnect();
  redis?.disconnect();
  await node?.close();
  webhook?.close();
  await env?.close();
});

describe("inbox", () => {
  test("unread and mention counts are exact after 1,000 messages with mark-read, a kill -9'd worker and every job twice", { timeout: 180_000 }, async () => {
    const users: TestUser[] = [];
    for (let i = 0; i < USERS; i++) users.push(await registerUser(baseUrl, `inb${i}`));
    // users[0] is online (a live device): they get no notifications.
    const tracker = createPresenceTracker({ redis, keys: redisKeys(env.redisPrefix), ttlMs: 600_000, graceMs: 1000 });
    await tracker.heartbeat(users[0]!.id, "desk");

    const conversations: { id: string; members: TestUser[] }[] = [];
    for (let c = 0; c < CONVERSATIONS; c++) {
      const members = [users[c % USERS]!, users[(c + 1) % USERS]!, users[(c + 3) % USERS]!];
      const res = await members[0]!.api.conversations.createConversation({
        kind: ConversationKind.GROUP, title: `c${c}`, memberIds: members.slice(1).map((m) => m.id),
      });
      conversations.push({ id: res.conversation!.id, members });
    }

    let worker = await spawnWorker();
    /** Every message sent: for the truth and the notification checks. */
    const sent: { conversationId: string; seq: bigint; senderId: string; body: string }[] = [];
    let next = 0;
    let killed = false;
    let restarted = false;
    const sendOne = async (i: number) => {
      const conv = conversations[(i * 7) % CONVERSATIONS]!;
      const sender = conv.members[i % 3]!;
      const other = conv.members[(i + 1) % 3]!;
      const body = i % 5 === 0 ? `hey @${other.username}, message ${i}` : i % 11 === 0 ? `mail@${other.username}x ${i}` : `message ${i}`;
      const res = await sender.api.messages.sendMessage({ conversationId: conv.id, body, idempotencyKey: `k${i}` });
      const m = res.message!;
      sent.push({ conversationId: conv.id, seq: m.seq, senderId: sender.id, body });
      // Every job delivered twice: a second job for the same event under another id.
      await queue.add("event", { conversationId: conv.id, seq: m.seq.toString(), kind: 1, senderId: sender.id }, { jobId: `${inboxJobId(conv.id, m.seq)}_again` });
      // Mark-read in between: now and then a member reads up to somewhere in the past.
      if (i % 9 === 0) {
        const reader = conv.members[(i + 2) % 3]!;
        await reader.api.messages.markRead({ conversationId: conv.id, seq: m.seq - BigInt(i % 4) });
      }
    };
    await Promise.all(Array.from({ length: SEND_CONCURRENCY }, async () => {
      for (;;) {
        const i = next++;
        if (i >= MESSAGES) return;
        if (i === 300 && !killed) {
          killed = true;
          await worker.kill();
        }
        if (i === 500 && !restarted) {
          restarted = true;
          worker = await spawnWorker();
        }
        await sendOne(i);
      }
    }));
    // One last message per conversation, after every mark-read: each row's final job sees the final markers.
    for (const conv of conversations) await sendOne(MESSAGES + conversations.indexOf(conv) * 3);
    assert.ok(killed && restarted);

    // Truth, computed here from what was sent and the read markers in PostgreSQL.
    const markers = await env.db.any(sql.type(z.object({ conversation_id: z.string(), user_id: z.string(), last_read_seq: z.bigint() }))`
      SELECT conversation_id, user_id, last_read_seq FROM members`);
    const truth = new Map<string, { unread: number; mentions: number }>();
    for (const m of markers) {
      const username = users.find((u) => u.id === m.user_id)!.username;
      const mention = new RegExp(`(^|[^a-z0-9_.-])@${username.replace(/\./g, "\\.")}($|[^a-z0-9_.-])`, "i");
      const unread = sent.filter((s) => s.conversationId === m.conversation_id && s.senderId !== m.user_id && s.seq > m.last_read_seq);
      truth.set(`${m.user_id}:${m.conversation_id}`, { unread: unread.length, mentions: unread.filter((s) => mention.test(s.body)).length });
    }
    assert.ok([...truth.values()].some((t) => t.mentions > 0), "the load has mentions");

    // 1. The worker's rows, once it caught up (every row at last_seq and the final read markers).
    const rowType = z.object({ user_id: z.string(), conversation_id: z.string(), unread_count: z.bigint(), mention_count: z.bigint(), fresh: z.boolean() });
    const rows = (await eventually(async () => {
      const r = await env.db.any(sql.type(rowType)`
        SELECT i.user_id, i.conversation_id, i.unread_count, i.mention_count,
          (i.counted_seq = c.last_seq AND i.read_seq = m.last_read_seq) AS fresh
        FROM members m JOIN conversations c ON c.id = m.conversation_id
        JOIN inbox i ON i.user_id = m.user_id AND i.conversation_id = m.conversation_id`);
      return r.length === markers.length && r.every((x) => x.fresh) ? r : null;
    }, { timeoutMs: 90_000, intervalMs: 500 }))!;
    for (const row of rows) {
      const t = truth.get(`${row.user_id}:${row.conversation_id}`)!;
      assert.deepEqual([Number(row.unread_count), Number(row.mention_count)], [t.unread, t.mentions], `row ${row.user_id}:${row.conversation_id}`);
    }

    // 2. ListInbox (RPC) and GET /api/inbox agree with the truth.
    for (const user of users) {
      const inbox = serviceClient(InboxService, baseUrl, user.token);
      const res = await inbox.listInbox({ limit: 200 });
      const mine = markers.filter((m) => m.user_id === user.id);
      assert.equal(res.entries.length, mine.length);
      let total = 0;
      for (const e of res.entries) {
        const t = truth.get(`${user.id}:${e.conversationId}`)!;
        assert.deepEqual([Number(e.unreadCount), Number(e.mentionCount)], [t.unread, t.mentions]);
        const last = sent.filter((s) => s.conversationId === e.conversationId).sort((a, b) => Number(b.seq - a.seq))[0]!;
        assert.equal(e.lastMessage?.seq, last.seq);
        assert.equal(e.lastMessage?.body, last.body);
        total += t.unread;
      }
      assert.equal(Number(res.totalUnread), total);
      const rest = await fetch(`${baseUrl}/api/inbox?limit=5`, { headers: { authorization: `Bearer ${user.token}` } });
      assert.equal(rest.status, 200);
      const json = (await rest.json()) as { entries: { unreadCount: string }[]; totalUnread: string };
      assert.equal(json.entries.length, Math.min(5, mine.length));
      assert.equal(Number(json.totalUnread), total);
    }

    // 3. Notifications: the last message of every conversation reached each offline recipient
    // through the webhook (after retries); the online user got none; none went to a sender.
    await eventually(() => {
      for (const conv of conversations) {
        const last = sent.filter((s) => s.conversationId === conv.id).sort((a, b) => Number(b.seq - a.seq))[0]!;
        for (const m of conv.members) {
          if (m.id === last.senderId || m.id === users[0]!.id) continue;
          if (!received.some((n) => n.conversationId === conv.id && n.seq === last.seq.toString() && n.userId === m.id)) return false;
        }
      }
      return true;
    }, { timeoutMs: 60_000, intervalMs: 500 });
    assert.ok(received.every((n) => n.userId !== users[0]!.id), "online users are not notified");
    const bySeq = new Map(sent.map((s) => [`${s.conversationId}:${s.seq}`, s]));
    assert.ok(received.every((n) => bySeq.get(`${n.conversationId}:${n.seq}`)!.senderId !== n.userId));
    assert.ok([...attemptsById.values()].some((a) => a > 1), "some webhook calls were retried");
    console.log(`# inbox: ${sent.length} messages, ${received.length} notifications delivered (${new Set(received.map((n) => n.id)).size} distinct)`);
  });

  test("a job that cannot succeed ends in the dead-letter queue", async () => {
    const keys = redisKeys(env.redisPrefix);
    if (workers.size === 0) await spawnWorker();
    await queue.add("event", { conversationId: "00000000-0000-0000-0000-000000000000", seq: "1", kind: 1, senderId: "x" }, { jobId: "missing_1", attempts: 2, backoff: { type: "fixed", delay: 10 } });
    const deadRedis = createRedis(env.config.redisUrl);
    const dead = new Queue<DeadLetter>(keys.deadQueue, { connection: deadRedis, prefix: keys.bullPrefix });
    try {
      const job = (await eventually(async () => (await dead.getJob("inbox_missing_1")) ?? null, { timeoutMs: 30_000, intervalMs: 200 }))!;
      assert.equal(job.data.queue, "inbox");
      assert.equal(job.data.jobId, "missing_1");
      assert.match(job.data.failedReason, /does not exist/);
    } finally {
      await dead.close();
      deadRedis.disconnect();
    }
  });
});
