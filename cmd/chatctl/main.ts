/**
 * chatctl: operator commands. `chatctl <group> <command> [args]`; `chatctl help` lists them.
 * Add a group by writing `cmd/chatctl/<group>.ts` (a CommandGroup) and listing it below.
 */
import { loadConfig, type Config } from "../../internal/config/index.js";
import type { CommandGroup } from "./command.js";
import { clusterCommands } from "./cluster.js";
import { dbCommands } from "./db.js";
import { keysCommands } from "./keys.js";

const groups: Record<string, CommandGroup> = {
  cluster: clusterCommands,
  db: dbCommands,
  keys: keysCommands,
};

function usage(out: (line: string) => void): void {
  out("usage: chatctl <group> <command> [args]");
  for (const [name, group] of Object.entries(groups)) {
    for (const [command, c] of Object.entries(group.commands)) out(`  ${name} ${command}\t${c.summary}`);
  }
}

async function main(argv: string[]): Promise<number> {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const [groupName, commandName, ...args] = argv;
  const command = groupName ? groups[groupName]?.commands[commandName ?? ""] : undefined;
  if (!command) {
    usage(groupName === "help" || groupName === undefined ? out : (l) => process.stderr.write(`${l}\n`));
    return groupName === "help" ? 0 : 2;
  }
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    process.stderr.write(`chatctl: ${(error as Error).message}\n`);
    return 2;
  }
  return command.run(config, args, out);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`chatctl: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
