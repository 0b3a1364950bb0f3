import { expect, test } from "bun:test";
import { callUpstream } from "./upstream-call.ts";

const NOW = Date.parse("2026-09-29T14:00:00Z");
const clock = () => NOW;

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });

// The upstreams' own 429 bodies, as their documentation gives them.
const spentPlan = () =>
  json(429, {
    error: {
      code: "1308",
      message: "Usage limit reached for 5 hour. Your limit will reset at 2026-09-29 23:10:05",
    },
  });
const busyBriefly = () =>
  json(
    429,
    {
      error: {
        message:
          "Rate limit reached for gpt-4o in organization org-abc on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms.",
        type: "requests",
        code: "rate_limit_exceeded",
      },
    },
    { "x-ratelimit-reset-requests": "120ms" },
  );
const busyForLong = () =>
  json(
    429,
    { type: "error", error: { type: "rate_limit_error", message: "Please try again later." } },
    { "retry-after": "30" },
  );

/** A send that answers from `answers` in turn and counts its calls. */
function sender(...answers: Array<() => Response>) {
  let calls = 0;
  return {
    send: async () => {
      const next = answers[Math.min(calls, answers.length - 1)] as () => Response;
      calls++;
      return next();
    },
    get calls() {
      return calls;
    },
  };
}

const call = (s: ReturnType<typeof sender>) =>
  callUpstream(s.send, 5_000, new AbortController(), clock);

test("an answer other than 429 is passed on as it is, unread", async () => {
  const s = sender(() => json(200, { ok: true }));
  const r = await call(s);
  expect(r.ok && r.response.status).toBe(200);
  expect(r.ok && r.preread).toBeUndefined();
  expect(r.ok && r.response.bodyUsed).toBe(false);
  expect(s.calls).toBe(1);
});

test("a spent plan is a refusal at once, without a second try", async () => {
  const s = sender(spentPlan);
  const r = await call(s);
  expect(r.ok).toBe(false);
  expect(!r.ok && r.refusal).toMatchObject({
    kind: "spent",
    until: Date.parse("2026-09-29T15:10:05Z"),
  });
  expect(s.calls).toBe(1);
});

test("busy for a moment: tried once more, and that answer is the one passed on", async () => {
  const s = sender(busyBriefly, () => json(200, { ok: true }));
  const started = performance.now();
  const r = await call(s);
  expect(r.ok && r.response.status).toBe(200);
  expect(r.ok && r.preread).toBeUndefined();
  expect(s.calls).toBe(2);
  // The upstream asked for 120 ms; the least wait before the retry is 250 ms.
  const waited = performance.now() - started;
  expect(waited).toBeGreaterThanOrEqual(240);
  expect(waited).toBeLessThan(1_500);
});

test("busy twice: the second refusal is the answer; no third try", async () => {
  const s = sender(busyBriefly, busyBriefly, () => json(200, { ok: true }));
  const r = await call(s);
  expect(!r.ok && r.refusal.kind).toBe("busy");
  expect(s.calls).toBe(2);
});

test("busy for longer than a retry may wait: a refusal at once", async () => {
  const s = sender(busyForLong, () => json(200, { ok: true }));
  const r = await call(s);
  expect(!r.ok && r.refusal).toMatchObject({ kind: "busy", waitMs: 30_000 });
  expect(s.calls).toBe(1);
});

test("a 429 that is no refusal we know is passed on, with the body already read", async () => {
  const s = sender(() => new Response("slow down", { status: 429 }));
  const r = await call(s);
  expect(r.ok && r.response.status).toBe(429);
  expect(r.ok && new TextDecoder().decode(r.preread)).toBe("slow down");
  expect(s.calls).toBe(1);
});
