import {
  type KeyAllowance,
  type PlanCapacity,
  type PlanWindowFigures,
  planFigures,
  WEEK_MS,
} from "../quota/plan.ts";
import type { Storage } from "../storage/types.ts";
import { windowFloor } from "../time/buckets.ts";

// The upstream plan against the keys handed out and the usage of all keys,
// read from storage: for /admin/usage, the dashboard and the plan metrics.

/** Keys read per page while summing the active keys' limits. */
const PAGE = 500;

async function activeAllowances(storage: Storage, now: number): Promise<KeyAllowance[]> {
  const out: KeyAllowance[] = [];
  for (let offset = 0; ; offset += PAGE) {
    const page = await storage.listKeys({ limit: PAGE, offset, now, status: "active" });
    // A key without a weekly limit is bounded over the week by its 5-hour limit.
    for (const k of page.keys) out.push({ fiveHour: k.tokenLimit, weekly: k.weeklyLimit });
    if (page.keys.length < PAGE) return out;
  }
}

async function usedSince(storage: Storage, from: number, now: number): Promise<number> {
  let sum = 0;
  for (const b of await storage.usageBetween(null, from, now + 1)) sum += b.tokens;
  return sum;
}

export async function planState(
  storage: Storage,
  now: number,
  plan: PlanCapacity,
): Promise<PlanWindowFigures[]> {
  const [keys, fiveHour, weekly] = await Promise.all([
    activeAllowances(storage, now),
    usedSince(storage, windowFloor(now), now),
    usedSince(storage, now - WEEK_MS + 1, now),
  ]);
  return planFigures(keys, { fiveHour, weekly }, plan);
}
