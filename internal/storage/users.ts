import { sql } from "slonik";
import { UniqueIntegrityConstraintViolationError } from "@slonik/errors";
import { AppError } from "../errors/index.js";
import type { Database } from "./database.js";
import { toUser, userRow, type UserRecord } from "./records.js";

const USER = sql.fragment`id, username, display_name, password_hash, created_at`;

/** Inserts a user; ALREADY_EXISTS when the username is taken. */
export async function insertUser(
  db: Database,
  user: { username: string; displayName: string; passwordHash: string },
): Promise<UserRecord> {
  try {
    const row = await db.one(sql.type(userRow)`
      INSERT INTO users (username, display_name, password_hash)
      VALUES (${user.username}, ${user.displayName}, ${user.passwordHash})
      RETURNING ${USER}`);
    return toUser(row);
  } catch (error) {
    if (error instanceof UniqueIntegrityConstraintViolationError) {
      throw new AppError("already_exists", "username is taken", { cause: error });
    }
    throw error;
  }
}

export async function findUserByUsername(db: Database, username: string): Promise<UserRecord | null> {
  const row = await db.maybeOne(sql.type(userRow)`SELECT ${USER} FROM users WHERE username = ${username}`);
  return row ? toUser(row) : null;
}

/** Users with any of these ids or usernames; unknown ones are simply absent. */
export async function listUsers(db: Database, ids: string[], usernames: string[]): Promise<UserRecord[]> {
  if (ids.length === 0 && usernames.length === 0) return [];
  const rows = await db.any(sql.type(userRow)`
    SELECT ${USER} FROM users
    WHERE id = ANY(${sql.array(ids, "uuid")}) OR username = ANY(${sql.array(usernames, "text")})`);
  return rows.map(toUser);
}
