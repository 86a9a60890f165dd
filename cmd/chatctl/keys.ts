import { keyRotationStatus, requestKeyRotation } from "../../internal/crypto/index.js";
import { redisKeys } from "../../internal/redis/index.js";
import { createDatabase } from "../../internal/storage/index.js";
import type { Config } from "../../internal/config/index.js";
import type { CommandGroup } from "./command.js";

async function status(config: Config) {
  const db = await createDatabase({ url: config.databaseUrl, poolSize: 1, statementTimeoutMs: 60_000, connectionTimeoutMs: config.dbConnectionTimeoutMs });
  try {
    return await keyRotationStatus({ db, redisUrl: config.redisUrl, keys: redisKeys(config.redisPrefix), activeVersion: config.messageKeyActive });
  } finally {
    await db.end();
  }
}

export const keysCommands: CommandGroup = {
  summary: "message encryption keys",
  commands: {
    rotate: {
      summary: "re-encrypt every row with the active key (CHAT_MESSAGE_KEY_ACTIVE) in a background job run by inbox-workers; --wait blocks until done",
      async run(config, args, out) {
        if (!config.encryptionEnabled) {
          out("keys rotate: encryption is off (CHAT_ENCRYPTION_ENABLED=false); nothing to rotate to");
          return 2;
        }
        const jobId = await requestKeyRotation(config.redisUrl, redisKeys(config.redisPrefix), config.messageKeyActive);
        out(JSON.stringify({ jobId, targetVersion: config.messageKeyActive }));
        if (!args.includes("--wait")) return 0;
        for (;;) {
          const s = await status(config);
          if (s.checkpoint?.targetVersion === config.messageKeyActive && s.checkpoint.state === "done") {
            out(JSON.stringify(s));
            return s.checkpoint.failed > 0 ? 1 : 0;
          }
          if (s.job?.state === "failed") {
            out(JSON.stringify(s));
            return 1;
          }
          await new Promise((r) => setTimeout(r, 500));
        }
      },
    },
    status: {
      summary: "rows per key version, the rotation checkpoint and job",
      async run(config, _args, out) {
        out(JSON.stringify(await status(config), null, 2));
        return 0;
      },
    },
  },
};
