import { sql, type DatabaseTransactionConnection } from "slonik";
import { z } from "zod";
import type { Database } from "./database.js";
import { messageRow, toMessage, type MessageRecord, type MemberRole, type OutboxEntry, type StoredBody } from "./records.js";

/** A conversation event about to be committed with its assigned seq. */
export type NewEvent = {
  id: string;
  conversationId: string;
  seq: bigint;
  senderId: string;
  kind: number;
  body: StoredBody;
  subjectUserIds: string[];
  idempotencyKey: string | null;
  epoch: bigint;
  /** Epoch ms; the actor's clock, so callers learn it without a read back. */
  createdAt: number;
};

const MESSAGE = sql.fragment`conversation_id, seq, id, sender_id, kind, body, ciphertext, iv, tag, key_version,
  subject_user_ids, idempotency_key, epoch, created_at`;

/** One text[] per column: the statement keeps 14 parameters however many rows it inserts. */
function columns(events: NewEvent[]) {
  const col = (f: (e: NewEvent) => string | null) => sql.array(events.map(f), "text");
  const sealed = (e: NewEvent) => (e.body.kind === "sealed" ? e.body : null);
  return [
    col((e) => e.conversationId),
    col((e) => e.seq.toString()),
    col((e) => e.id),
    col((e) => e.senderId),
    col((e) => String(e.kind)),
    col((e) => (e.body.kind === "plain" ? e.body.text : null)),
    col((e) => sealed(e)?.ciphertext.toString("hex") ?? null),
    col((e) => sealed(e)?.iv.toString("hex") ?? null),
    col((e) => sealed(e)?.tag.toString("hex") ?? null),
    col((e) => (sealed(e) ? String(sealed(e)!.keyVersion) : null)),
    col((e) => e.subjectUserIds.join(",")),
    col((e) => e.idempotencyKey),
    col((e) => e.epoch.toString()),
    col((e) => String(e.createdAt)),
  ];
}

/** `INSERT INTO messages` of any number of rows; with `where`, only rows whose column `c` passes it. */
function insertMessagesSql(events: NewEvent[], where = sql.fragment``) {
  const [c, seq, id, sender, kind, body, ct, iv, tag, kv, subjects, key, epoch, at] = columns(events);
  return sql.fragment`
    INSERT INTO messages (conversation_id, seq, id, sender_id, kind, body, ciphertext, iv, tag, key_version,
      subject_user_ids, idempotency_key, epoch, created_at)
    SELECT t.c::uuid, t.seq::int8, t.id::uuid, t.sender::uuid, t.kind::int2, t.body,
      decode(t.ct, 'hex'), decode(t.iv, 'hex'), decode(t.tag, 'hex'), t.kv::int4,
      string_to_array(t.subjects, ',')::uuid[], t.key, t.epoch::int8, to_timestamp(t.at::float8 / 1000)
    FROM unnest(${c}, ${seq}, ${id}, ${sender}, ${kind}, ${body}, ${ct}, ${iv}, ${tag}, ${kv}, ${subjects}, ${key}, ${epoch}, ${at})
      AS t(c, seq, id, sender, kind, body, ct, iv, tag, kv, subjects, key, epoch, at) ${where}`;
}

/** `INSERT INTO outbox`; each entry tagged with the conversation `c` it belongs to, for `where`. */
function insertOutboxSql(entries: { c: string; entry: OutboxEntry }[], where = sql.fragment``) {
  const col = (f: (e: { c: string; entry: OutboxEntry }) => string) => sql.array(entries.map(f), "text");
  return sql.fragment`
    INSERT INTO outbox (topic, key, event_id, payload)
    SELECT t.topic, t.key, t.event_id, t.payload::jsonb
    FROM unnest(${col((e) => e.c)}, ${col((e) => e.entry.topic)}, ${col((e) => e.entry.key)},
      ${col((e) => e.entry.eventId)}, ${col((e) => JSON.stringify(e.entry.payload))}) AS t(c, topic, key, event_id, payload) ${where}`;
}

/** Inserts events and outbox rows (one statement each, any number of rows) in the caller's transaction. */
export async function insertEvents(
  tx: DatabaseTransactionConnection,
  events: NewEvent[],
  outbox: OutboxEntry[],
): Promise<void> {
  if (events.length > 0) await tx.query(sql.unsafe`${insertMessagesSql(events)}`);
  if (outbox.length > 0) await tx.query(sql.unsafe`${insertOutboxSql(outbox.map((entry) => ({ c: "", entry })))}`);
}

export type MembershipChange =
  | { op: "add"; userIds: string[]; role: MemberRole }
  | { op: "remove"; userId: string }
  | { op: "rename"; title: string };

export type Commit = {
  conversationId: string;
  epoch: bigint;
  /** last_seq the actor believes is stored; the commit fails if it is not. */
  fromSeq: bigint;
  events: NewEvent[];
  changes: MembershipChange[];
  outbox: OutboxEntry[];
};

/**
 * Group commit: commits the batches of many conversations in one transaction. Each batch is
 * conditional on its actor's epoch and on last_seq = fromSeq (fencing, DESIGN §2.3); batches whose
 * condition fails are left out whole and their conversation ids returned, the others commit
 * together. Two concurrent calls never share a conversation (one batch in flight per actor), so
 * their row locks cannot deadlock.
 */
export async function commitBatches(db: Database, commits: Commit[]): Promise<Set<string>> {
  if (commits.length === 0) return new Set();
  const text = (f: (c: Commit) => string) => sql.array(commits.map(f), "text");
  const fence = sql.fragment`
    UPDATE conversations c SET last_seq = v.to_seq::int8, last_activity_at = now()
    FROM unnest(${text((c) => c.conversationId)}, ${text((c) => c.epoch.toString())},
      ${text((c) => c.fromSeq.toString())}, ${text((c) => (c.fromSeq + BigInt(c.events.length)).toString())})
      AS v(id, epoch, from_seq, to_seq)
    WHERE c.id = v.id::uuid AND c.epoch = v.epoch::int8 AND c.last_seq = v.from_seq::int8
    RETURNING c.id`;
  const refused = (passed: readonly string[]) => {
    const ok = new Set(passed);
    return new Set(commits.filter((c) => !ok.has(c.conversationId)).map((c) => c.conversationId));
  };
  const events = commits.flatMap((c) => c.events);
  const outbox = commits.flatMap((c) => c.outbox.map((entry) => ({ c: c.conversationId, entry })));
  const idRow = z.object({ id: z.string() });

  if (commits.every((c) => c.changes.length === 0)) {
    // The common case in one statement (one round trip): the fence, then only the passed batches'
    // rows. Data-modifying CTEs run in one snapshot and commit or fail together.
    const onlyPassed = sql.fragment`WHERE t.c::uuid IN (SELECT id FROM passed)`;
    return refused(await db.anyFirst(sql.type(idRow)`
      WITH passed AS (${fence}),
        m AS (${insertMessagesSql(events, onlyPassed)}),
        o AS (${insertOutboxSql(outbox, onlyPassed)})
      SELECT id FROM passed`));
  }
  return db.transaction(async (tx) => {
    const passed = new Set(await tx.anyFirst(sql.type(idRow)`${fence}`));
    const ok = commits.filter((c) => passed.has(c.conversationId));
    for (const commit of ok) {
      for (const change of commit.changes) {
        if (change.op === "add") {
          await tx.query(sql.unsafe`
            INSERT INTO members (conversation_id, user_id, role)
            SELECT ${commit.conversationId}, unnest(${sql.array(change.userIds, "uuid")}), ${change.role}
            ON CONFLICT DO NOTHING`);
        } else if (change.op === "remove") {
          await tx.query(sql.unsafe`
            DELETE FROM members WHERE conversation_id = ${commit.conversationId} AND user_id = ${change.userId}`);
        } else {
          await tx.query(sql.unsafe`UPDATE conversations SET title = ${change.title} WHERE id = ${commit.conversationId}`);
        }
      }
    }
    await insertEvents(tx, ok.flatMap((c) => c.events), ok.flatMap((c) => c.outbox));
    return refused([...passed]);
  });
}

export type Activation = {
  epoch: bigint;
  lastSeq: bigint;
  kind: "direct" | "group";
  members: Map<string, MemberRole>;
};

/** Takes ownership of a conversation: bumps its epoch and reads the state the actor caches. */
export async function activateConversation(db: Database, conversationId: string): Promise<Activation | null> {
  return db.transaction(async (tx) => {
    const row = await tx.maybeOne(sql.type(
      z.object({ epoch: z.bigint(), last_seq: z.bigint(), kind: z.enum(["direct", "group"]) }),
    )`UPDATE conversations SET epoch = epoch + 1 WHERE id = ${conversationId} RETURNING epoch, last_seq, kind`);
    if (row === null) return null;
    const members = await tx.any(sql.type(z.object({ user_id: z.string(), role: z.enum(["owner", "admin", "member"]) }))`
      SELECT user_id, role FROM members WHERE conversation_id = ${conversationId}`);
    return {
      epoch: row.epoch,
      lastSeq: row.last_seq,
      kind: row.kind,
      members: new Map(members.map((m) => [m.user_id, m.role])),
    };
  });
}

/** Messages already stored under these (conversation, sender, idempotency key) triples, in one query. */
export async function listMessagesByIdempotencyKey(
  db: Database,
  keys: { conversationId: string; senderId: string; key: string }[],
): Promise<MessageRecord[]> {
  if (keys.length === 0) return [];
  const rows = await db.any(sql.type(messageRow)`
    SELECT ${MESSAGE} FROM messages
    WHERE (conversation_id, sender_id, idempotency_key) IN (
      SELECT * FROM ${sql.unnest(keys.map((k) => [k.conversationId, k.senderId, k.key]), ["uuid", "uuid", "text"])})`);
  return rows.map(toMessage);
}

/** A page of events in ascending seq order, and whether more exist in the direction asked. */
export async function listMessages(
  db: Database,
  conversationId: string,
  page: { beforeSeq: bigint; afterSeq: bigint; limit: number },
): Promise<{ messages: MessageRecord[]; hasMore: boolean }> {
  const take = page.limit + 1;
  let rows: readonly z.infer<typeof messageRow>[];
  if (page.afterSeq > 0n) {
    rows = await db.any(sql.type(messageRow)`
      SELECT ${MESSAGE} FROM messages WHERE conversation_id = ${conversationId} AND seq > ${page.afterSeq.toString()}
      ORDER BY seq ASC LIMIT ${take}`);
  } else {
    const before = page.beforeSeq > 0n ? sql.fragment`AND seq < ${page.beforeSeq.toString()}` : sql.fragment``;
    rows = [...(await db.any(sql.type(messageRow)`
      SELECT ${MESSAGE} FROM messages WHERE conversation_id = ${conversationId} ${before}
      ORDER BY seq DESC LIMIT ${take}`))].reverse();
  }
  const hasMore = rows.length > page.limit;
  const kept = hasMore ? (page.afterSeq > 0n ? rows.slice(0, page.limit) : rows.slice(1)) : rows;
  return { messages: kept.map(toMessage), hasMore };
}
