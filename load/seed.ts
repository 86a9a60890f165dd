/**
 * Seeding for load runs: many users with tokens, and conversations of a given size.
 *
 * Registering through the API costs one scrypt hash per user (~50-100 ms of CPU), which would take
 * longer than the benchmark for 10,000+ users. So one user is registered through the API, and the
 * rest are inserted into the (fresh, benchmark-only) database with a copy of its password hash;
 * their tokens are signed here with the cluster's JWT secret, in the form the services issue
 * (HS256, iss "chat-system", sub = user id, `username` claim) — the first WebSocket upgrade or RPC
 * proves the form is still accepted. Conversations are created through the public API
 * (CreateConversation), so they carry their `created` event like any other.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { SignJWT } from "jose";
import pg from "pg";
import { AuthService } from "../internal/gen/chat/v1/auth_pb.js";
import { ConversationKind } from "../internal/gen/chat/v1/common_pb.js";
import { ConversationService } from "../internal/gen/chat/v1/conversation_pb.js";
import type { Cluster } from "./cluster.js";

export type SeedUser = { id: string; username: string; token: string };
export type SeedConversation = { id: string; memberIndexes: number[] };

const PASSWORD = "load test password";
const TOKEN_TTL_S = 6 * 3600;

export const apiClients = (baseUrl: string, token?: string) => {
  const transport = createConnectTransport({
    baseUrl, httpVersion: "1.1", useBinaryFormat: true,
    interceptors: token ? [(next) => async (req) => { req.header.set("authorization", `Bearer ${token}`); return next(req); }] : [],
  });
  return { auth: createClient(AuthService, transport), conversations: createClient(ConversationService, transport) };
};

async function inParallel(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, async () => {
    while (next < n) await fn(next++);
  }));
}

/** `count` users named `<tag>u<i>`; the first through the API, the rest by SQL with the same password hash. */
export async function seedUsers(cluster: Cluster, count: number, tag = "l"): Promise<SeedUser[]> {
  const api = apiClients(cluster.nodes[0]!.url);
  const first = await api.auth.register({ username: `${tag}u0`, password: PASSWORD });
  const db = new pg.Client({ connectionString: cluster.databaseUrl });
  await db.connect();
  const key = new TextEncoder().encode(cluster.jwtSecret);
  try {
    const { rows: [{ password_hash: hash }] } = await db.query<{ password_hash: string }>("SELECT password_hash FROM users WHERE id = $1", [first.user!.id]);
    const users: SeedUser[] = [{ id: first.user!.id, username: first.user!.username, token: first.token }];
    const chunk = 5_000;
    for (let start = 1; start < count; start += chunk) {
      const names = Array.from({ length: Math.min(chunk, count - start) }, (_, k) => `${tag}u${start + k}`);
      const { rows } = await db.query<{ id: string; username: string }>(
        `INSERT INTO users (username, display_name, password_hash)
         SELECT n, n, $2 FROM unnest($1::text[]) WITH ORDINALITY AS t(n, o) ORDER BY o
         RETURNING id::text, username`, [names, hash]);
      const byName = new Map(rows.map((r) => [r.username, r.id]));
      for (const username of names) users.push({ id: byName.get(username)!, username, token: "" });
    }
    const exp = Math.floor(Date.now() / 1000) + TOKEN_TTL_S;
    for (const u of users) {
      if (u.token) continue;
      u.token = await new SignJWT({ username: u.username })
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setSubject(u.id).setIssuer("chat-system").setIssuedAt().setExpirationTime(exp)
        .sign(key);
    }
    return users;
  } finally {
    await db.end();
  }
}

/**
 * Groups of `size` consecutive users (the last group may be smaller; a group of one gets no
 * conversation), each created by its first member through CreateConversation (GROUP kind).
 * Calls are spread over the chat-nodes.
 */
export async function seedConversations(cluster: Cluster, users: SeedUser[], size: number, onProgress?: (done: number, total: number) => void): Promise<SeedConversation[]> {
  const total = Math.floor(users.length / size) + (users.length % size >= 2 ? 1 : 0);
  const out: SeedConversation[] = new Array(total);
  let done = 0;
  await inParallel(total, 16, async (g) => {
    const memberIndexes = Array.from({ length: Math.min(size, users.length - g * size) }, (_, k) => g * size + k);
    const owner = users[memberIndexes[0]!]!;
    const api = apiClients(cluster.nodes[g % cluster.nodes.length]!.url, owner.token);
    const res = await api.conversations.createConversation({
      kind: ConversationKind.GROUP, title: `load ${g}`, memberIds: memberIndexes.slice(1).map((i) => users[i]!.id),
    });
    out[g] = { id: res.conversation!.id, memberIndexes };
    if (++done % 500 === 0) onProgress?.(done, total);
  });
  return out;
}

/** The committed last seq of each conversation (the authority for counting lost deliveries). */
export async function lastSeqs(cluster: Cluster, conversationIds: string[]): Promise<Record<string, number>> {
  const db = new pg.Client({ connectionString: cluster.databaseUrl });
  await db.connect();
  try {
    const { rows } = await db.query<{ id: string; last_seq: string }>("SELECT id::text, last_seq FROM conversations WHERE id = ANY($1::uuid[])", [conversationIds]);
    return Object.fromEntries(rows.map((r) => [r.id, Number(r.last_seq)]));
  } finally {
    await db.end();
  }
}
