import { describe, expect, test } from "bun:test";
import { inPeak, localMinuteOfDay, parseHours } from "./peak.ts";

const at = (iso: string) => Date.parse(iso);

describe("peak hours", () => {
  test("the local clock of a zone without daylight saving (Asia/Shanghai, UTC+8)", () => {
    expect(localMinuteOfDay(at("2026-12-06T06:30:00Z"), "Asia/Shanghai")).toBe(14 * 60 + 30);
    expect(localMinuteOfDay(at("2026-12-06T16:00:00Z"), "Asia/Shanghai")).toBe(0);
  });

  const shanghai = { ...parseHours("14:00-18:00"), timeZone: "Asia/Shanghai", multiplier: 3 };
  test.each([
    ["2026-12-06T05:59:59Z", false], // 13:59:59 local
    ["2026-12-06T06:00:00Z", true], // 14:00 local: the start is inside
    ["2026-12-06T09:59:00Z", true], // 17:59 local
    ["2026-12-06T10:00:00Z", false], // 18:00 local: the end is outside
  ])("14:00-18:00 Asia/Shanghai at %s: %p", (iso, expected) => {
    expect(inPeak(at(iso), shanghai)).toBe(expected);
  });

  test("a zone with daylight saving time moves the span with its clock", () => {
    const ny = { ...parseHours("09:00-17:00"), timeZone: "America/New_York", multiplier: 2 };
    // 13:30 UTC is 09:30 in summer (EDT, UTC-4) but 08:30 in winter (EST, UTC-5).
    expect(inPeak(at("2026-07-01T13:30:00Z"), ny)).toBe(true);
    expect(inPeak(at("2026-01-15T13:30:00Z"), ny)).toBe(false);
    // The same UTC instant either side of the spring change (2026-03-08).
    expect(inPeak(at("2026-03-06T13:30:00Z"), ny)).toBe(false);
    expect(inPeak(at("2026-03-09T13:30:00Z"), ny)).toBe(true);
  });

  test("a span past midnight wraps", () => {
    const night = { ...parseHours("22:00-02:00"), timeZone: "UTC", multiplier: 2 };
    expect(inPeak(at("2026-12-06T23:00:00Z"), night)).toBe(true);
    expect(inPeak(at("2026-12-06T01:59:00Z"), night)).toBe(true);
    expect(inPeak(at("2026-12-06T02:00:00Z"), night)).toBe(false);
    expect(inPeak(at("2026-12-06T12:00:00Z"), night)).toBe(false);
  });

  test("24:00 ends a span at midnight", () => {
    const evening = { ...parseHours("18:00-24:00"), timeZone: "UTC", multiplier: 2 };
    expect(inPeak(at("2026-12-06T23:59:00Z"), evening)).toBe(true);
    expect(inPeak(at("2026-12-06T00:00:00Z"), evening)).toBe(false);
  });
});
