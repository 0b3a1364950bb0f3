import { describe, expect, test } from "bun:test";
import { InvalidArgumentError } from "commander";
import { instant } from "../admin/schemas.ts";
import {
  parseConcurrency,
  parseExpiry,
  parseLimit,
  parseNewExpiry,
  parsePastTime,
  parseTokens,
} from "./parse.ts";

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

describe("parseConcurrency", () => {
  for (const [v, n] of [
    ["1", 1],
    ["8", 8],
    [" 32 ", 32],
    ["2147483647", 2_147_483_647],
  ] as const) {
    test(v, () => expect(parseConcurrency(v)).toBe(n));
  }
  for (const v of ["", "0", "-1", "1.5", "1e3", "0x10", "four", "2147483648"]) {
    test(`rejects ${JSON.stringify(v)}`, () =>
      expect(() => parseConcurrency(v)).toThrow(InvalidArgumentError));
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
  test("a date-time without an offset is UTC, as in the admin API, whatever the time zone", () => {
    const tz = process.env.TZ;
    process.env.TZ = "Europe/Berlin";
    try {
      // The zone is in force: Berlin is an hour ahead of UTC in winter.
      expect(new Date(Date.UTC(2027, 0, 31, 18)).getHours()).toBe(19);
      for (const text of [
        "2027-01-31T18:00",
        "2027-01-31T18:00:00",
        "2027-01-31 18:00:00.250",
        "2027-07-01",
      ]) {
        expect(parseExpiry(text, now)).toBe(instant.parse(text));
      }
      expect(parseExpiry("2027-01-31T18:00", now)).toBe(Date.UTC(2027, 0, 31, 18));
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
  });
  test("weeks", () => expect(parseExpiry("2w", now)).toBe(now + 14 * 86_400_000));
  for (const v of [
    "tomorrow",
    "2027-13-45",
    "2027-02-30",
    "2027-02-29T10:00:00Z",
    "31/01/2027",
    "30m",
    "",
  ]) {
    test(`rejects ${JSON.stringify(v)}`, () =>
      expect(() => parseExpiry(v, now)).toThrow(InvalidArgumentError));
  }
});

describe("times: one parser, forward for expiry, back for ranges", () => {
  const now = Date.UTC(2026, 10, 28, 12);
  test("a duration counts back for --from and --to", () => {
    expect(parsePastTime("30d", now)).toBe(new Date(now - 30 * 86_400_000).toISOString());
    expect(parsePastTime("12h", now)).toBe(new Date(now - 12 * 3_600_000).toISOString());
    expect(parsePastTime("2026-11-01", now)).toBe("2026-11-01T00:00:00.000Z");
  });
  test("a bad time says what is expected", () => {
    expect(() => parsePastTime("yesterday", now)).toThrow(
      "or a duration such as 30d, 12h or 2w ago",
    );
  });
  test("a new key's expiry must be in the future, with a hint", () => {
    expect(parseNewExpiry("30d", now)).toBe(now + 30 * 86_400_000);
    expect(parseNewExpiry("never", now)).toBeNull();
    expect(() => parseNewExpiry("2020-01-01", now)).toThrow(
      "2020-01-01T00:00:00.000Z is in the past, so the key would never work",
    );
    expect(() => parseNewExpiry("2020-01-01", now)).toThrow("keys update KEY --disable");
  });
  test("a new key's limit must be at least 1, with a hint", () => {
    expect(parseLimit("1")).toBe(1);
    expect(() => parseLimit("0")).toThrow("a limit of 0 would refuse every request");
    expect(() => parseLimit("0k")).toThrow("--disable");
  });
});
