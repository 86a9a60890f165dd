import type { Config } from "../../internal/config/index.js";

/** One `chatctl <group> <command>`: gets the parsed config and the remaining arguments; returns the exit code. */
export type Command = {
  summary: string;
  run(config: Config, args: string[], out: (line: string) => void): Promise<number>;
};

/** A command group (`keys`, `db`, ...): one file each; main.ts lists them. */
export type CommandGroup = { summary: string; commands: Record<string, Command> };
