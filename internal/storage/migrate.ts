import { readdir, readFile } from "node:fs/promises";
import { sql } from "slonik";
import { z } from "zod";
import type { Database } from "./database.js";

const MIGRATIONS_DIR = new URL("./migrations/", import.meta.url);
const LOCK_ID = 7_331_001;

/**
 * Applies numbered `migrations/NNN_name.sql` files not yet recorded in schema_migrations, each in
 * its own transaction, under an advisory lock so concurrent starters apply each exactly once.
 * Returns the names applied.
 */
/** A template-strings array holding one literal: migration files are trusted SQL. */
function rawSql(text: string): TemplateStringsArray {
  return Object.freeze(Object.assign([text], { raw: Object.freeze([text]) })) as unknown as TemplateStringsArray;
}

/**
 * Statements of a migration file: they end with `;` at the end of a line (the driver refuses
 * several statements in one query). Migrations keep dollar-quoted bodies free of such lines.
 */
function splitStatements(text: string): string[] {
  return text
    .split(/;\s*$/m)
    .map((s) => s.replace(/^\s*--.*$/gm, "").trim())
    .filter((s) => s.length > 0);
}

export async function migrate(db: Database): Promise<string[]> {
  const files = (await readdir(MIGRATIONS_DIR)).filter((f) => /^\d{3}_.+\.sql$/.test(f)).sort();
  return db.connect(async (connection) => {
    await connection.query(sql.unsafe`SELECT pg_advisory_lock(${LOCK_ID})`);
    try {
      await connection.query(sql.unsafe`
        CREATE TABLE IF NOT EXISTS schema_migrations (
          version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
      const done = new Set(
        await connection.anyFirst(sql.type(z.object({ version: z.number() }))`SELECT version FROM schema_migrations`),
      );
      const applied: string[] = [];
      for (const file of files) {
        const version = Number(file.slice(0, 3));
        if (done.has(version)) continue;
        const text = await readFile(new URL(file, MIGRATIONS_DIR), "utf8");
        await connection.transaction(async (tx) => {
          for (const statement of splitStatements(text)) await tx.query(sql.unsafe(rawSql(statement)));
          await tx.query(sql.unsafe`INSERT INTO schema_migrations (version, name) VALUES (${version}, ${file})`);
        });
        applied.push(file);
      }
      return applied;
    } finally {
      await connection.query(sql.unsafe`SELECT pg_advisory_unlock(${LOCK_ID})`);
    }
  });
}
