/**
 * Layout check (run by npm test and npm run lint):
 * - code outside a capability folder `internal/<cap>/` may import only its `index.ts`
 *   (generated code under internal/gen is imported by file: it has no index);
 * - web/ never imports internal/; load/ imports only internal/gen;
 * - the capabilities' import graph has no cycle.
 * Prints every violation and exits 1 when there is one.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

const root = resolve(import.meta.dirname, "..");
const roots = ["cmd", "internal", "test", "load", "scripts", "web/src"];
const IMPORT = /(?:import|export)\s[^'"]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

function* files(dir: string): Generator<string> {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const entry of entries) {
    if (entry === "node_modules" || entry === "dist") continue;
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) yield* files(path);
    else if (/\.(ts|tsx)$/.test(entry)) yield path;
  }
}

const capabilityOf = (rel: string): string | null => {
  const parts = rel.split(sep);
  return parts[0] === "internal" && parts.length > 2 ? parts[1]! : null;
};

const problems: string[] = [];
const edges = new Map<string, Set<string>>();

for (const base of roots) {
  for (const file of files(join(root, base))) {
    const rel = relative(root, file);
    const from = capabilityOf(rel);
    const text = readFileSync(file, "utf8");
    for (const match of text.matchAll(IMPORT)) {
      const spec = match[1] ?? match[2]!;
      if (!spec.startsWith(".")) continue;
      const target = relative(root, resolve(dirname(file), spec));
      const to = capabilityOf(target);
      if (rel.startsWith(`web${sep}`) && target.startsWith(`internal${sep}`)) {
        problems.push(`${rel}: web/ must not import internal/ (${spec})`);
      }
      if (rel.startsWith(`load${sep}`) && target.startsWith(`internal${sep}`) && to !== "gen") {
        problems.push(`${rel}: load/ may import only internal/gen (${spec})`);
      }
      if (to === null || to === from || to === "gen") continue;
      const inside = target.split(sep).slice(2).join("/");
      if (inside !== "index.js" && inside !== "index.ts" && inside !== "index") {
        problems.push(`${rel}: deep import into internal/${to} (${spec}); import its index.ts`);
      }
      if (from !== null) {
        if (!edges.has(from)) edges.set(from, new Set());
        edges.get(from)!.add(to);
      }
    }
  }
}

// Cycle detection over capabilities (depth-first, reporting each cycle's path once).
const state = new Map<string, "visiting" | "done">();
const stack: string[] = [];
function visit(node: string): void {
  state.set(node, "visiting");
  stack.push(node);
  for (const next of edges.get(node) ?? []) {
    if (state.get(next) === "visiting") {
      problems.push(`import cycle: ${[...stack.slice(stack.indexOf(next)), next].join(" -> ")}`);
    } else if (!state.has(next)) {
      visit(next);
    }
  }
  stack.pop();
  state.set(node, "done");
}
for (const node of edges.keys()) if (!state.has(node)) visit(node);

if (problems.length > 0) {
  for (const p of problems) console.error(p);
  process.exit(1);
}
console.log(`imports ok: ${edges.size} capabilities, no deep imports, no cycles`);
