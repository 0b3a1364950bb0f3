import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { makeTestApp } from "../../test/harness/app.ts";

// The upstream plan (UPSTREAM_PLAN_5H, UPSTREAM_PLAN_WEEKLY) against the keys
// handed out, as /admin/usage and /metrics show it.

const ADMIN = "admin-key-for-plan-tests";
const HOUR = 3_600_000;

let t: Awaited<ReturnType<typeof makeTestApp>>;

beforeAll(async () => {
  t = await makeTestApp({
    ADMIN_API_KEY: ADMIN,
    UPSTREAM_PLAN_5H: "1000000",
    UPSTREAM_PLAN_WEEKLY: "20000000",
  });
  // Two active keys allowed 1.5M per 5 hours together: 1.5 times the plan.
  const a = await t.newKey({ name: "a", tokenLimit: 1_000_000 });
  const b = await t.newKey({ name: "b", tokenLimit: 500_000 });
  // Neither a disabled nor an expired key counts towards what is allowed.
  const off = await t.newKey({ name: "off", tokenLimit: 9_000_000 });
  await t.storage.updateKey(off.record.id, { disabled: true }, t.time.now);
  await t.newKey({ name: "gone", tokenLimit: 9_000_000, expiresAt: t.time.now + 1000 });
  // Used two days ago (in the week, not in the 5 hours) and just now.
  const now = t.time.now;
  t.time.now = now - 48 * HOUR;
  t.ledger.record(a.record.id, 3_000_000);
  await t.ledger.flush();
  t.time.now = now;
  t.ledger.record(a.record.id, 200_000);
  t.ledger.record(b.record.id, 50_000);
  await t.ledger.flush();
  t.time.now = now + 2000;
});
afterAll(async () => {
  await t.cleanup();
});

describe("the plan against the keys", () => {
  test("/admin/usage shows what the active keys are allowed and what is used, against the plan", async () => {
    const r = await t.app.request("/admin/usage", {
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { plan: unknown[] };
    expect(body.plan).toEqual([
      {
        window: "5h",
        capacity: 1_000_000,
        allowed: 1_500_000,
        used: 250_000,
        allowed_ratio: 1.5,
        used_ratio: 0.25,
      },
      {
        window: "weekly",
        capacity: 20_000_000,
        // Without a weekly limit a key may use 33.6 full 5-hour windows in a week.
        allowed: 50_400_000,
        used: 3_250_000,
        allowed_ratio: 2.52,
        used_ratio: 0.163,
      },
    ]);
  });

  test("/metrics exposes the capacity, what is allowed and what is used, per window", async () => {
    const text = await (await t.app.request("/metrics")).text();
    expect(text).toContain('tollgate_plan_capacity_units{window="5h"} 1000000');
    expect(text).toContain('tollgate_plan_capacity_units{window="weekly"} 20000000');
    expect(text).toContain('tollgate_plan_allowed_units{window="5h"} 1500000');
    expect(text).toContain('tollgate_plan_allowed_units{window="weekly"} 50400000');
    expect(text).toContain('tollgate_plan_used_units{window="5h"} 250000');
    expect(text).toContain('tollgate_plan_used_units{window="weekly"} 3250000');
  });

  test("the OpenAPI document describes the plan figures", async () => {
    const doc = (await (await t.app.request("/admin/openapi.json")).json()) as {
      components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
    };
    expect(doc.components.schemas.UsageTotals?.properties?.plan).toBeDefined();
    expect(Object.keys(doc.components.schemas.PlanWindow?.properties ?? {})).toEqual([
      "window",
      "capacity",
      "allowed",
      "used",
      "allowed_ratio",
      "used_ratio",
    ]);
  });
});

describe("without a declared plan", () => {
  test("the sums are shown, the capacity and ratios are null, and no capacity metric is set", async () => {
    const bare = await makeTestApp({ ADMIN_API_KEY: ADMIN });
    try {
      await bare.newKey({ tokenLimit: 100 });
      const r = await bare.app.request("/admin/usage", {
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      const body = (await r.json()) as { plan: Array<Record<string, unknown>> };
      expect(body.plan[0]).toMatchObject({ capacity: null, allowed: 100, allowed_ratio: null });
      const text = await (await bare.app.request("/metrics")).text();
      expect(text).not.toContain("tollgate_plan_capacity_units{");
      expect(text).toContain('tollgate_plan_allowed_units{window="5h"} 100');
    } finally {
      await bare.cleanup();
    }
  });
});

describe("the plan against keys with a weekly limit", () => {
  test("a key's own weekly limit, when lower, is what it is allowed in the week", async () => {
    const c = await t.newKey({ name: "weekly-c", tokenLimit: 100_000 });
    await t.storage.updateKey(c.record.id, { weeklyLimit: 250_000 }, t.time.now);
    const r = await t.app.request("/admin/usage", {
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    const body = (await r.json()) as { plan: Array<{ window: string; allowed: number }> };
    // a and b as above (33.6 windows each), c only its 250k, not 3.36M.
    expect(body.plan.find((w) => w.window === "weekly")?.allowed).toBe(50_400_000 + 250_000);
    expect(body.plan.find((w) => w.window === "5h")?.allowed).toBe(1_500_000 + 100_000);
  });
});
