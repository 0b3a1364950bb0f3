import { describe, expect, test } from "bun:test";
import { backoffMs, retry } from "./retry.ts";

describe("retry", () => {
  test("backoff doubles up to the cap, scaled by jitter", () => {
    const o = { baseMs: 100, maxMs: 1000 };
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffMs(n, o, () => 1))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
    expect(backoffMs(3, o, () => 0.5)).toBe(200);
    expect(backoffMs(3, o, () => 0)).toBe(0);
  });

  test("retries until success, waiting between attempts", async () => {
    const waits: number[] = [];
    let calls = 0;
    const v = await retry(
      async () => {
        calls++;
        if (calls < 3) throw new Error("not yet");
        return "ok";
      },
      {
        attempts: 5,
        baseMs: 10,
        maxMs: 100,
        random: () => 1,
        sleep: async (ms) => void waits.push(ms),
      },
    );
    expect(v).toBe("ok");
    expect(waits).toEqual([10, 20]);
  });

  test("gives up after the last attempt with the last error", async () => {
    let calls = 0;
    const p = retry(
      async () => {
        calls++;
        throw new Error(`fail ${calls}`);
      },
      { attempts: 3, baseMs: 1, maxMs: 1, sleep: async () => {} },
    );
    await expect(p).rejects.toThrow("fail 3");
    expect(calls).toBe(3);
  });
});

describe("retry with permanent errors", () => {
  test("a permanent error is thrown at once, without waiting", async () => {
    let calls = 0;
    const waits: number[] = [];
    const p = retry(
      async () => {
        calls++;
        throw Object.assign(new Error("database does not exist"), { code: "3D000" });
      },
      {
        attempts: 10,
        baseMs: 1,
        maxMs: 1,
        sleep: async (ms) => void waits.push(ms),
        isPermanent: (err) => (err as { code?: string }).code === "3D000",
      },
    );
    await expect(p).rejects.toThrow("database does not exist");
    expect(calls).toBe(1);
    expect(waits).toEqual([]);
  });
});
