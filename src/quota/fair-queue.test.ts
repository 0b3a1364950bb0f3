import { describe, expect, test } from "bun:test";
import { type Acquired, FairQueue, nextKey } from "./fair-queue.ts";

const slotOf = (a: Acquired) => {
  if (!a.ok) throw new Error(`expected a slot, got ${a.reason}`);
  return a.slot;
};

/** Queues requests, and releases each slot as soon as it is given, recording the order. */
function recorder(q: FairQueue) {
  const order: string[] = [];
  const waits: Promise<void>[] = [];
  const take = (key: string, label = key) => {
    waits.push(
      q.acquire(key).then((a) => {
        order.push(label);
        // Held for a moment, as a request would be.
        setTimeout(() => slotOf(a).release(), 1);
      }),
    );
  };
  return { order, take, all: () => Promise.all(waits) };
}

describe("nextKey", () => {
  test.each([
    [
      "least recently served wins",
      [
        ["a", 5, 0],
        ["b", 2, 9],
      ],
      "b",
    ],
    [
      "never served goes first",
      [
        ["a", 0, 0],
        ["b", -1, 5],
      ],
      "b",
    ],
    [
      "a tie goes to the earliest waiter",
      [
        ["a", -1, 7],
        ["b", -1, 3],
      ],
      "b",
    ],
    ["nobody waiting", [], undefined],
  ] as const)("%s", (_name, rows, expected) => {
    const candidates = rows.map(
      ([k, lastServed, headSeq]) =>
        [k, { lastServed, headSeq }] as [string, { lastServed: number; headSeq: number }],
    );
    expect(nextKey(candidates)).toBe(expected);
  });
});

describe("FairQueue", () => {
  test("free slots are given at once, up to the limit", async () => {
    const q = new FairQueue({ limit: 2, timeoutMs: 1000 });
    const a = slotOf(await q.acquire("a"));
    slotOf(await q.acquire("a"));
    expect(a.waitedMs).toBe(0);
    expect(q.inUse).toBe(2);
    let third = false;
    void q.acquire("a").then(() => {
      third = true;
    });
    await Bun.sleep(5);
    expect(third).toBe(false);
    expect(q.depth).toBe(1);
    a.release();
    await Bun.sleep(0);
    expect(third).toBe(true);
    expect(q.depth).toBe(0);
  });

  test("a key that floods does not go ahead of one that asks now and then", async () => {
    const q = new FairQueue({ limit: 1, timeoutMs: 1000 });
    const { order, take, all } = recorder(q);
    const first = slotOf(await q.acquire("flood"));
    take("flood", "f1");
    take("flood", "f2");
    take("flood", "f3");
    take("calm", "c1");
    first.release();
    await all();
    // The flood was queued first, but its key had just been served.
    expect(order).toEqual(["c1", "f1", "f2", "f3"]);
  });

  test("keys that keep waiting take turns (round robin), each in its own order", async () => {
    const q = new FairQueue({ limit: 1, timeoutMs: 1000 });
    const { order, take, all } = recorder(q);
    const first = slotOf(await q.acquire("x"));
    for (const label of ["a1", "a2", "a3", "b1", "b2", "c1"]) take(label[0] as string, label);
    first.release();
    await all();
    expect(order).toEqual(["a1", "b1", "c1", "a2", "b2", "a3"]);
  });

  test("a wait ends after the timeout without a slot, and leaves the queue", async () => {
    const depths: number[] = [];
    const q = new FairQueue({ limit: 1, timeoutMs: 30, onDepth: (d) => depths.push(d) });
    const held = slotOf(await q.acquire("a"));
    const waited = await q.acquire("b");
    expect(waited).toMatchObject({ ok: false, reason: "timeout" });
    if (!waited.ok) expect(waited.waitedMs).toBeGreaterThanOrEqual(25);
    expect(q.depth).toBe(0);
    expect(depths).toEqual([1, 0]);
    held.release();
    expect(q.inUse).toBe(0);
  });

  test("an aborted wait leaves the queue and does not take a slot later", async () => {
    const q = new FairQueue({ limit: 1, timeoutMs: 1000 });
    const held = slotOf(await q.acquire("a"));
    const abort = new AbortController();
    const pending = q.acquire("b", abort.signal);
    expect(q.depth).toBe(1);
    abort.abort();
    const r = await pending;
    expect(r).toMatchObject({ ok: false, reason: "aborted" });
    expect(q.depth).toBe(0);
    held.release();
    expect(q.inUse).toBe(0);
    // Already aborted: refused without queueing.
    expect(await q.acquire("c", abort.signal)).toMatchObject({ ok: false, reason: "aborted" });
  });

  test("releasing twice frees one slot only", async () => {
    const q = new FairQueue({ limit: 1, timeoutMs: 1000 });
    const s = slotOf(await q.acquire("a"));
    const t = q.acquire("b");
    const u = q.acquire("c");
    s.release();
    s.release();
    slotOf(await t);
    expect(q.inUse).toBe(1);
    expect(q.depth).toBe(1);
    void u;
  });

  test("a limit below one is a programming error", () => {
    expect(() => new FairQueue({ limit: 0, timeoutMs: 1 })).toThrow();
  });
});
