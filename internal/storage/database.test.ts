import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { sql } from "slonik";
import { createTestEnv, type TestEnv } from "../../test/support/index.js";
import { createDatabase } from "./index.js";

let env: TestEnv;
before(async () => {
  env = await createTestEnv();
});
after(async () => {
  await env?.close();
});

test("waiting for a pool connection is bounded: UNAVAILABLE after the wait, fine once one is free", async () => {
  const db = await createDatabase({ url: env.databaseUrl, poolSize: 1, statementTimeoutMs: 5_000, connectionTimeoutMs: 300 });
  try {
    const busy = db.query(sql.unsafe`SELECT pg_sleep(1)`);
    const started = Date.now();
    await assert.rejects(db.query(sql.unsafe`SELECT 1`), (e: any) => e.code === "unavailable" && e.details.retryAfterMs > 0);
    const waited = Date.now() - started;
    assert.ok(waited >= 250 && waited < 900, `gave up after ${waited} ms`);
    await busy;
    assert.equal((await db.query(sql.unsafe`SELECT 1 AS one`)).rows[0]!.one, 1);
    // Transactions hold their slot until they finish; queued callers get it in order.
    const order: number[] = [];
    await Promise.all([1, 2, 3].map((n) => db.transaction(async (tx) => {
      await tx.query(sql.unsafe`SELECT pg_sleep(0.05)`);
      order.push(n);
    })));
    assert.deepEqual(order, [1, 2, 3]);
  } finally {
    await db.end();
  }
});

test("a statement over the statement timeout fails with DEADLINE_EXCEEDED", async () => {
  const db = await createDatabase({ url: env.databaseUrl, poolSize: 2, statementTimeoutMs: 200, connectionTimeoutMs: 1_000 });
  try {
    await assert.rejects(db.query(sql.unsafe`SELECT pg_sleep(2)`), (e: any) => e.code === "deadline_exceeded");
  } finally {
    await db.end();
  }
});
