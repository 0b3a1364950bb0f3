import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Journal, type UsageEvent } from "./journal.ts";
import {
  aggregateModels,
  historyModelName,
  hourOf,
  LONG_MODEL_NAME,
  MODEL_NAME_MAX,
  UNKNOWN_MODEL,
} from "./model-usage.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "tollgate-model-usage-"));
  dirs.push(d);
  return d;
};

const HOUR = 3_600_000;
const T = Date.UTC(2026, 11, 6, 10, 0, 0);

const detailed = (seq: number, at: number, model: string, units: number): UsageEvent => ({
  seq,
  keyId: "k",
  at,
  tokens: units,
  requests: 1,
  detail: { model, usage: { input: 10, output: 5, cacheRead: 3, cacheWrite: 2 }, spendMicros: 7 },
});

describe("the journal carries what a replay needs", () => {
  test("a charge's detail is written and read back exactly", () => {
    const j = Journal.open(tmp(), "i");
    const e = detailed(1, T, "glm-5.1", 60);
    j.append(e);
    j.append({ seq: 2, keyId: "k", at: T, tokens: 9, requests: 1 });
    expect(j.read()).toEqual({
      events: [e, { seq: 2, keyId: "k", at: T, tokens: 9, requests: 1 }],
      skipped: 0,
    });
    j.close();
  });

  test("a journal written before models files still replays: units = raw tokens, model unknown", () => {
    const dir = tmp();
    writeFileSync(join(dir, "old.journal"), `${JSON.stringify([1, "k", T, 42, 1])}\n`);
    const j = Journal.open(dir, "old");
    const { events, skipped } = j.read();
    expect(skipped).toBe(0);
    expect(events).toEqual([{ seq: 1, keyId: "k", at: T, tokens: 42, requests: 1 }]);
    expect(aggregateModels(events)).toEqual([
      {
        keyId: "k",
        model: UNKNOWN_MODEL,
        bucketStart: T,
        input: 0,
        output: 42,
        cacheRead: 0,
        cacheWrite: 0,
        units: 42,
        requests: 1,
        spendMicros: 0,
      },
    ]);
    j.close();
  });

  test("a damaged detail makes the line unreadable, not a wrong charge", () => {
    const dir = tmp();
    writeFileSync(
      join(dir, "bad.journal"),
      `${JSON.stringify([1, "k", T, 42, 1, "m", 1, "x", 0, 0, 0])}\n`,
    );
    const j = Journal.open(dir, "bad");
    expect(j.read()).toEqual({ events: [], skipped: 1 });
    j.close();
  });
});

describe("aggregateModels", () => {
  test("one row per key, model and hour", () => {
    const rows = aggregateModels([
      detailed(1, T + 1, "a", 10),
      detailed(2, T + HOUR - 1, "a", 20),
      detailed(3, T + HOUR, "a", 30),
      detailed(4, T + 5, "b", 40),
      // The model list: no model, no cost. Left out.
      { seq: 5, keyId: "k", at: T, tokens: 0, requests: 1 },
    ]);
    expect(
      rows.map((r) => [r.model, r.bucketStart, r.units, r.requests, r.input, r.spendMicros]),
    ).toEqual([
      ["a", T, 30, 2, 20, 14],
      ["a", T + HOUR, 30, 1, 10, 7],
      ["b", T, 40, 1, 10, 7],
    ]);
    expect(hourOf(T + HOUR - 1)).toBe(T);
  });

  test("a request that cost nothing is not history, whatever model it named", () => {
    const refused: UsageEvent = {
      seq: 1,
      keyId: "k",
      at: T,
      tokens: 0,
      requests: 1,
      detail: {
        model: "made-up",
        usage: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 },
        spendMicros: 0,
      },
    };
    expect(aggregateModels([refused])).toEqual([]);
    // A free model (weight 0) still has history: its tokens were used.
    const free = {
      ...refused,
      detail: {
        ...refused.detail,
        model: "free",
        usage: { input: 4, output: 1, cacheRead: 0, cacheWrite: 0 },
      },
    } as UsageEvent;
    expect(aggregateModels([free]).map((r) => [r.model, r.input, r.units])).toEqual([
      ["free", 4, 0],
    ]);
  });

  test("a name longer than the history keeps is filed under one label", () => {
    const long = "m".repeat(MODEL_NAME_MAX + 1);
    expect(historyModelName(long)).toBe(LONG_MODEL_NAME);
    expect(historyModelName("m".repeat(MODEL_NAME_MAX))).toBe("m".repeat(MODEL_NAME_MAX));
    const rows = aggregateModels([detailed(1, T, long, 10), detailed(2, T, `${long}x`, 5)]);
    expect(rows.map((r) => [r.model, r.units, r.requests])).toEqual([[LONG_MODEL_NAME, 15, 2]]);
  });
});
