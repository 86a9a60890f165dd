import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { gcraStep, type Budget } from "./gcra.js";
import { createLocalRateLimiter } from "./rate-limiter.js";

test("burst at once, then one per interval", () => {
  const b: Budget = { name: "t", perSecond: 10, burst: 5 };
  let tat: number | undefined;
  const results: boolean[] = [];
  for (let i = 0; i < 7; i++) {
    const step = gcraStep(tat, 1_000, b);
    tat = step.tat;
    results.push(step.decision.allowed);
  }
  assert.deepEqual(results, [true, true, true, true, true, false, false]);
  const refused = gcraStep(tat, 1_000, b).decision;
  assert.equal(refused.retryAfterMs, 100);
  assert.equal(gcraStep(tat, 1_100, b).decision.allowed, true);
});

test("property: in every window of length t at most burst + rate * t requests pass", () => {
  fc.assert(fc.property(
    fc.record({ perSecond: fc.double({ min: 0.5, max: 200, noNaN: true }), burst: fc.integer({ min: 1, max: 50 }) }),
    fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 1, maxLength: 300 }),
    ({ perSecond, burst }, gaps) => {
      const b: Budget = { name: "p", perSecond, burst };
      let now = 0, tat: number | undefined;
      const passed: number[] = [];
      for (const gap of gaps) {
        now += gap;
        const step = gcraStep(tat, now, b);
        tat = step.tat;
        if (step.decision.allowed) passed.push(now);
      }
      for (let i = 0; i < passed.length; i++) {
        for (let j = i; j < passed.length; j++) {
          const t = (passed[j]! - passed[i]!) / 1000;
          assert.ok(j - i + 1 <= burst + perSecond * t + 1e-6, `${j - i + 1} passed within ${t}s`);
        }
      }
    },
  ));
});

test("local limiter keeps memory bounded", async () => {
  const limiter = createLocalRateLimiter({ maxSubjects: 100, now: () => 0 });
  for (let i = 0; i < 1000; i++) await limiter.check({ name: "m", perSecond: 1, burst: 2 }, `s${i}`);
  assert.equal((await limiter.check({ name: "m", perSecond: 1, burst: 2 }, "s999")).remaining, 0);
});
