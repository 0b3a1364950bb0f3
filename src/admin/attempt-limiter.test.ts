import { describe, expect, test } from "bun:test";
import { AttemptLimiter, defaultAttemptLimits } from "./attempt-limiter.ts";

const WINDOW = defaultAttemptLimits.windowMs;

describe("AttemptLimiter", () => {
  test("10 failures block the address until 15 minutes after the first; others may go on", () => {
    const l = new AttemptLimiter();
    for (let i = 0; i < 9; i++) l.fail("10.0.0.1", 1000 + i);
    expect(l.blockedFor("10.0.0.1", 2000)).toBe(0);
    l.fail("10.0.0.1", 2000);
    expect(l.blockedFor("10.0.0.1", 2000)).toBe(1000 + WINDOW - 2000);
    expect(l.blockedFor("10.0.0.2", 2000)).toBe(0);
    expect(l.blockedFor("10.0.0.1", 1000 + WINDOW - 1)).toBe(1);
    expect(l.blockedFor("10.0.0.1", 1000 + WINDOW)).toBe(0);
  });

  test("failures older than the window start a new count", () => {
    const l = new AttemptLimiter();
    for (let i = 0; i < 9; i++) l.fail("a", 0);
    expect(l.fail("a", WINDOW)).toBe(1);
    expect(l.blockedFor("a", WINDOW)).toBe(0);
  });

  test("memory stays bounded: finished windows are swept, and the oldest go past the cap", () => {
    const l = new AttemptLimiter({ max: 10, windowMs: 1000, maxAddresses: 100 });
    for (let i = 0; i < 50; i++) l.fail(`old-${i}`, 0);
    l.fail("new", 120_000);
    expect(l.size).toBe(1);
    for (let i = 0; i < 500; i++) l.fail(`flood-${i}`, 120_001);
    expect(l.size).toBeLessThanOrEqual(100);
    expect(l.blockedFor("flood-499", 120_001)).toBe(0);
  });
});
