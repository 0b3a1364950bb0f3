import { describe, expect, test } from "bun:test";
import { planFigures, weeklyAllowance } from "./plan.ts";

describe("weeklyAllowance", () => {
  test.each([
    ["no weekly limit: 33.6 full 5-hour windows", { fiveHour: 200_000, weekly: null }, 6_720_000],
    ["a weekly limit below that binds", { fiveHour: 200_000, weekly: 1_000_000 }, 1_000_000],
    ["a weekly limit above that does not", { fiveHour: 100, weekly: 1_000_000 }, 3_360],
  ] as const)("%s", (_name, key, expected) => {
    expect(weeklyAllowance(key)).toBe(expected);
  });
});

describe("planFigures", () => {
  test("sums the keys' limits and sets them and the usage against the plan", () => {
    const keys = [
      { fiveHour: 400_000, weekly: null },
      { fiveHour: 300_000, weekly: 2_000_000 },
    ];
    const [five, week] = planFigures(
      keys,
      { fiveHour: 250_000, weekly: 5_000_000 },
      { fiveHour: 500_000, weekly: 10_000_000 },
    );
    expect(five).toEqual({
      window: "5h",
      capacity: 500_000,
      allowed: 700_000,
      used: 250_000,
      allowedRatio: 1.4,
      usedRatio: 0.5,
    });
    expect(week).toEqual({
      window: "weekly",
      capacity: 10_000_000,
      allowed: 13_440_000 + 2_000_000,
      used: 5_000_000,
      allowedRatio: 1.544,
      usedRatio: 0.5,
    });
  });

  test("without a declared plan the sums are still given, the ratios are null", () => {
    const [five, week] = planFigures(
      [{ fiveHour: 10, weekly: null }],
      { fiveHour: 3, weekly: 7 },
      { fiveHour: null, weekly: null },
    );
    expect(five).toMatchObject({ capacity: null, allowed: 10, used: 3, allowedRatio: null });
    expect(week).toMatchObject({ capacity: null, allowed: 336, used: 7, usedRatio: null });
  });

  test("no active keys: nothing allowed", () => {
    const figures = planFigures([], { fiveHour: 0, weekly: 0 }, { fiveHour: 100, weekly: null });
    expect(figures[0]).toMatchObject({ allowed: 0, allowedRatio: 0 });
  });
});
