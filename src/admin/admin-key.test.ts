import { describe, expect, test } from "bun:test";
import { adminKeyMatcher } from "./admin-key.ts";

const KEY = "adm_7f3c9a1e5b2d4f6081a3c5e7f9b1d3e5";

describe("adminKeyMatcher", () => {
  const matches = adminKeyMatcher(KEY);

  test("only the exact key matches", () => {
    expect(matches(KEY)).toBe(true);
    for (const wrong of [
      "",
      KEY.slice(0, -1),
      `${KEY}x`,
      KEY.toUpperCase(),
      ` ${KEY}`,
      "x".repeat(10_000),
    ]) {
      expect(matches(wrong)).toBe(false);
    }
  });

  test("compares digests, so a guess of any length costs the same and never throws", () => {
    // timingSafeEqual throws on unequal lengths: these would, were the raw strings compared.
    expect(() => matches("a")).not.toThrow();
    expect(() => matches("a".repeat(5000))).not.toThrow();
  });

  test("time does not depend on how much of the key a guess shares", () => {
    // A long key makes a leak large: a plain === on a megabyte takes very
    // different times for a guess sharing all but the last character and one
    // differing in the first. The same measurement is run on such a naive
    // check first, to show it would be caught, then on ours.
    const long = "k".repeat(1 << 20);
    const sharing = `${long.slice(0, -1)}x`;
    const none = `x${long.slice(1)}`;
    const naive = (presented: string) => presented === long;

    const naiveSpread = timingSpread(naive, sharing, none);
    // A leak shows in every measurement; a burst of load on a busy machine
    // (seen once to push identical work 1.55 apart, with both cores kept
    // busy by other processes) rarely in three running.
    const matches = adminKeyMatcher(long);
    let spread = Number.POSITIVE_INFINITY;
    for (let round = 0; round < 3 && spread >= 1.5; round++) {
      spread = Math.min(spread, timingSpread(matches, sharing, none));
    }
    // Naive: measured 300 to 700 times apart. Ours hashes a megabyte either
    // way, so the medians differ by noise only (within 2% in 30 runs on a
    // 2-core machine with both cores kept busy); 1.5 leaves room for that
    // and is still two orders of magnitude below what the naive check shows.
    expect(naiveSpread).toBeGreaterThan(20);
    expect(spread).toBeLessThan(1.5);
  });
});

/**
 * How far apart the median times of `check(a)` and `check(b)` are, as a
 * ratio of at least 1 (1 = the same). Warmed up first
 * (the JIT, and flattening of the guesses' strings); then pairs in alternating
 * order, so neither guess always runs first, nor always in a quieter moment.
 */
function timingSpread(check: (s: string) => boolean, a: string, b: string): number {
  const time = (guess: string) => {
    const t0 = Bun.nanoseconds();
    check(guess);
    return Bun.nanoseconds() - t0;
  };
  for (let i = 0; i < 20; i++) time(i % 2 ? a : b);
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < 151; i++) {
    if (i % 2) {
      ta.push(time(a));
      tb.push(time(b));
    } else {
      tb.push(time(b));
      ta.push(time(a));
    }
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1] as number;
  const [ma, mb] = [Math.max(1, median(ta)), Math.max(1, median(tb))];
  return Math.max(ma / mb, mb / ma);
}
