import { createDatabase, migrate } from "../../internal/storage/index.js";
import type { CommandGroup } from "./command.js";

export const dbCommands: CommandGroup = {
  summary: "database schema",
  commands: {
    migrate: {
      summary: "apply pending migrations",
      async run(config, _args, out) {
        const db = await createDatabase({ url: config.databaseUrl, poolSize: 1, statementTimeoutMs: 600_000, connectionTimeoutMs: config.dbConnectionTimeoutMs });
        try {
          const applied = await migrate(db);
          out(applied.length === 0 ? "db: up to date" : `db: applied ${applied.join(", ")}`);
          return 0;
        } finally {
          await db.end();
        }
      },
    },
  },
};
