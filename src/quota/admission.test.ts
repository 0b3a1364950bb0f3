import { describe, expect, test } from "bun:test";
import { BUCKET_MS, WEEK_MS, WINDOW_MS } from "../time/buckets.ts";
import { type AdmissionRequest, admit, RESERVED_RETRY_MS } from "./admission.ts";

const now = 1_000 * BUCKET_MS;
const base = (over: Partial<AdmissionRequest>): AdmissionRequest => ({
  buckets: [],
  limit: 1000,
  weeklyLimit: null,
  now,
  reservedByOthers: 0,
  input: 10,
  output: { named: null, answers: 1 },
  policy: "refuse",
  defaultOutput: 100,
  ...over,
});

describe("admit", () => {
  test("a named cap that fits reserves input plus cap", () => {
    const d = admit(base({ output: { named: 200, answers: 1 } }));
    expect(d).toMatchObject({ ok: true, reservation: 210, forwardCap: null });
  });

  test("several answers each reserve the cap", () => {
    const d = admit(base({ output: { named: 200, answers: 3 } }));
    expect(d).toMatchObject({ ok: true, reservation: 610 });
    expect(admit(base({ output: { named: 400, answers: 3 } })).ok).toBe(false);
  });

  test("no cap: the default is reserved and the request goes as it is", () => {
    expect(admit(base({}))).toMatchObject({ ok: true, reservation: 110, forwardCap: null });
  });

  test("no cap, less than the default left: forwarded capped to what remains", () => {
    const d = admit(base({ buckets: [{ bucketStart: now, tokens: 950 }] }));
    expect(d).toMatchObject({ ok: true, reservation: 50, forwardCap: 40 });
  });

  test("the others' reservations count: what they hold is not there to take", () => {
    const d = admit(base({ reservedByOthers: 1000 }));
    expect(d).toMatchObject({ ok: false, reason: "reserved", retryAfterMs: RESERVED_RETRY_MS });
    const cap = admit(base({ reservedByOthers: 700, output: { named: 400, answers: 1 } }));
    expect(cap).toMatchObject({ ok: false, reason: "cap", remaining: 300, needed: 410 });
    // Nothing needs to age out: it is the requests in flight that stand in the way.
    if (!cap.ok) expect(cap.retryAfterMs).toBe(RESERVED_RETRY_MS);
  });

  test("a spent window is refused as before, with the ageing-out wait", () => {
    const d = admit(base({ buckets: [{ bucketStart: now - BUCKET_MS, tokens: 1000 }] }));
    expect(d).toMatchObject({ ok: false, reason: "spent" });
    if (!d.ok) expect(d.retryAfterMs).toBe(WINDOW_MS - BUCKET_MS);
  });

  test("a cap larger than what remains is refused; the wait is until it fits, or never", () => {
    const buckets = [{ bucketStart: now - BUCKET_MS, tokens: 600 }];
    const later = admit(base({ buckets, output: { named: 500, answers: 1 } }));
    expect(later).toMatchObject({ ok: false, reason: "cap", remaining: 400, needed: 510 });
    if (!later.ok) expect(later.retryAfterMs).toBe(WINDOW_MS - BUCKET_MS);
    const never = admit(base({ output: { named: 5000, answers: 1 } }));
    expect(never).toMatchObject({ ok: false, reason: "cap" });
    if (!never.ok) expect(never.retryAfterMs).toBe(Number.POSITIVE_INFINITY);
  });

  test("clamp: the cap is lowered to what remains beside the input", () => {
    const buckets = [{ bucketStart: now, tokens: 600 }];
    const d = admit(base({ buckets, policy: "clamp", output: { named: 5000, answers: 2 } }));
    expect(d).toMatchObject({ ok: true, forwardCap: 195, reservation: 400 });
  });

  test("a request without a cap is admitted while anything remains, capped to one token at least", () => {
    const buckets = [{ bucketStart: now, tokens: 995 }];
    expect(admit(base({ buckets }))).toMatchObject({ ok: true, forwardCap: 1, reservation: 11 });
    expect(admit(base({ buckets, output: null }))).toMatchObject({ ok: true, reservation: 10 });
    // A named cap must fit beside the input estimate.
    expect(admit(base({ buckets, policy: "clamp", output: { named: 1, answers: 1 } })).ok).toBe(
      false,
    );
  });

  test("endpoints without output reserve their input only", () => {
    expect(admit(base({ output: null, input: 300 }))).toMatchObject({ ok: true, reservation: 300 });
  });
});

describe("admit with a weekly window", () => {
  const HOUR = 60 * 60 * 1000;
  // 900 tokens two days ago: outside the 5 hours, inside the week.
  const old = { bucketStart: now - 48 * HOUR, tokens: 900 };

  test("usage older than 5 hours counts only against the week", () => {
    expect(admit(base({ buckets: [old], limit: 1000 })).ok).toBe(true);
    const d = admit(base({ buckets: [old], limit: 1000, weeklyLimit: 900 }));
    expect(d).toMatchObject({ ok: false, reason: "spent" });
    if (d.ok) throw new Error("admitted");
    expect(d.state.spanMs).toBe(WEEK_MS);
    // Free once the old bucket leaves the week.
    expect(d.retryAfterMs).toBe(old.bucketStart + WEEK_MS - now);
  });

  test("what remains is the least either window leaves; the tighter one is shown", () => {
    const d = admit(base({ buckets: [old], limit: 1000, weeklyLimit: 1000 }));
    expect(d).toMatchObject({ ok: true, forwardCap: 90, reservation: 100 });
    expect(d.state).toMatchObject({ spanMs: WEEK_MS, used: 900, remaining: 100 });
    const loose = admit(base({ buckets: [old], limit: 1000, weeklyLimit: 100_000 }));
    expect(loose.state).toMatchObject({ spanMs: WINDOW_MS, used: 0, remaining: 1000 });
  });

  test("when both are spent, the longer wait is the one to honour", () => {
    const recent = { bucketStart: now - HOUR, tokens: 200 };
    const d = admit(base({ buckets: [old, recent], limit: 100, weeklyLimit: 1000 }));
    if (d.ok) throw new Error("admitted");
    expect(d.state.spanMs).toBe(WEEK_MS);
    expect(d.retryAfterMs).toBe(old.bucketStart + WEEK_MS - now);
  });

  test("a cap that does not fit the week waits for the week", () => {
    const d = admit(
      base({
        buckets: [old],
        limit: 10_000,
        weeklyLimit: 1000,
        output: { named: 500, answers: 1 },
      }),
    );
    expect(d).toMatchObject({ ok: false, reason: "cap", remaining: 100, needed: 510 });
    if (d.ok) throw new Error("admitted");
    expect(d.retryAfterMs).toBe(old.bucketStart + WEEK_MS - now);
    const never = admit(
      base({ buckets: [], limit: 10_000, weeklyLimit: 100, output: { named: 500, answers: 1 } }),
    );
    expect(never).toMatchObject({ ok: false, reason: "cap", retryAfterMs: Infinity });
  });
});
