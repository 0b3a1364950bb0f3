import { describe, expect, test } from "bun:test";
import { InvalidArgumentError } from "commander";
import { parseExpiry, parseTokens } from "./parse.ts";

describe("parseTokens", () => {
  const ok: Array<[string, number]> = [
    ["100000", 100_000],
    ["150_000", 150_000],
    ["100k", 100_000],
    ["2.5M", 2_500_000],
    ["1g", 1_000_000_000],
    ["0", 0],
  ];
  for (const [v, n] of ok) test(v, () => expect(parseTokens(v)).toBe(n));
  for (const v of ["", "-5", "ten", "1.5", "1e6", "5x", "99999999999999999999"]) {
    test(`rejects ${JSON.stringify(v)}`, () =>
      expect(() => parseTokens(v)).toThrow(InvalidArgumentError));
  }
});

describe("parseExpiry", () => {
  const now = Date.UTC(2026, 10, 28);
  test("ISO dates and date-times", () => {
    expect(parseExpiry("2027-01-31", now)).toBe(Date.UTC(2027, 0, 31));
    expect(parseExpiry("2027-01-31T18:00:00Z", now)).toBe(Date.UTC(2027, 0, 31, 18));
    expect(parseExpiry("2027-01-31T18:00:00+02:00", now)).toBe(Date.UTC(2027, 0, 31, 16));
  });
  test("durations from now, and never", () => {
    expect(parseExpiry("30d", now)).toBe(now + 30 * 86_400_000);
    expect(parseExpiry("12h", now)).toBe(now + 12 * 3_600_000);
    expect(parseExpiry("never", now)).toBeNull();
  });
  for (const v of ["tomorrow", "2027-13-45", "31/01/2027", "30m", ""]) {
    test(`rejects ${JSON.stringify(v)}`, () =>
      expect(() => parseExpiry(v, now)).toThrow(InvalidArgumentError));
  }
});
