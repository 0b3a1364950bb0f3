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
    // A long key makes a leak large: a plain === would compare a megabyte for
    // the shared-prefix guess and stop at the first character for the other.
    const long = "k".repeat(1 << 20);
    const m = adminKeyMatcher(long);
    const sharing = `${long.slice(0, -1)}x`;
    const none = `x${long.slice(1)}`;
    const time = (guess: string) => {
      const t0 = Bun.nanoseconds();
      m(guess);
      return Bun.nanoseconds() - t0;
    };
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < 41; i++) {
      a.push(time(sharing));
      b.push(time(none));
    }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1] as number;
    const ratio = median(a) / median(b);
    expect(ratio).toBeGreaterThan(0.8);
    expect(ratio).toBeLessThan(1.25);
  });
});
