import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Rendezvous } from "./rendezvous.js";

const keys = Array.from({ length: 10_000 }, (_, i) => `${i.toString(16).padStart(8, "0")}-5c1e-4a9b-9d2f-${(i * 7919).toString(16).padStart(12, "0")}`);
const nodeNames = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 24 }), { minLength: 3, maxLength: 10 });

function counts(ring: Rendezvous): Map<string, number> {
  const c = new Map(ring.members.map((m) => [m, 0]));
  for (const k of keys) c.set(ring.owner(k)!, c.get(ring.owner(k)!)! + 1);
  return c;
}

test("placement is balanced: max/min keys per node <= 1.25 over 10k keys with 3-10 nodes", () => {
  fc.assert(
    fc.property(nodeNames, (names) => {
      const c = [...counts(new Rendezvous(names)).values()];
      return Math.max(...c) / Math.min(...c) <= 1.25;
    }),
    { numRuns: 40 },
  );
});

test("a join or a leave moves at most 1/N + 5% of the keys, and only to or from that node", () => {
  fc.assert(
    fc.property(nodeNames, fc.string({ minLength: 1, maxLength: 24 }), (names, extra) => {
      fc.pre(!names.includes(extra));
      const before = new Rendezvous(names);
      const joined = new Rendezvous([...names, extra]);
      let moved = 0;
      for (const k of keys) {
        const a = before.owner(k);
        const b = joined.owner(k);
        if (a !== b) {
          moved++;
          if (b !== extra) return false; // a join only moves keys to the newcomer
        }
      }
      if (moved / keys.length > 1 / joined.members.length + 0.05) return false;
      const left = new Rendezvous(names.slice(1));
      let movedOnLeave = 0;
      for (const k of keys) {
        const a = before.owner(k);
        if (a !== left.owner(k)) {
          movedOnLeave++;
          if (a !== names[0]) return false; // a leave only moves the leaver's keys
        }
      }
      return movedOnLeave / keys.length <= 1 / before.members.length + 0.05;
    }),
    { numRuns: 40 },
  );
});

test("every node computes the same owner whatever the order of the member list", () => {
  fc.assert(
    fc.property(nodeNames, fc.string(), (names, key) => {
      return new Rendezvous(names).owner(key) === new Rendezvous([...names].reverse()).owner(key);
    }),
  );
  assert.equal(new Rendezvous([]).owner("x"), undefined);
});
