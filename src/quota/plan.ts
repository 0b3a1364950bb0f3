import { WINDOW_MS } from "../time/buckets.ts";

// The upstream plan against the keys handed out (pure). What the active keys
// are allowed in a window, summed, is set beside what the plan delivers in
// that window (oversubscription), and so is what was actually used.
//
// Quotas are counted in units: tokens today (every weight 1), weighted units
// once model weights are configured. The figures do not care which.

export const WEEK_MS = 7 * 24 * 60 * 60 * 1000;

/** What the plan delivers per window; null = not declared. */
export interface PlanCapacity {
  fiveHour: number | null;
  weekly: number | null;
}

/** One active key's limits. */
export interface KeyAllowance {
  fiveHour: number;
  /** Its own weekly limit; null = none, so its 5-hour limit is what bounds its week. */
  weekly: number | null;
}

export type PlanWindow = "5h" | "weekly";

export interface PlanWindowFigures {
  window: PlanWindow;
  /** What the plan delivers in the window; null when not declared. */
  capacity: number | null;
  /** Sum of what the active keys may use in the window. */
  allowed: number;
  /** Used across all keys in the window (ending now). */
  used: number;
  /** allowed / capacity: above 1, the keys together may ask for more than the plan gives. */
  allowedRatio: number | null;
  /** used / capacity. */
  usedRatio: number | null;
}

/** The most a key may use in 7 days: its weekly limit, or back-to-back full 5-hour windows. */
export function weeklyAllowance(k: KeyAllowance): number {
  const fromFiveHour = Math.floor((k.fiveHour * WEEK_MS) / WINDOW_MS);
  return k.weekly === null ? fromFiveHour : Math.min(k.weekly, fromFiveHour);
}

const ratio = (part: number, whole: number | null): number | null =>
  whole === null || whole <= 0 ? null : Math.round((part / whole) * 1000) / 1000;

export function planFigures(
  keys: Iterable<KeyAllowance>,
  used: { fiveHour: number; weekly: number },
  plan: PlanCapacity,
): PlanWindowFigures[] {
  let fiveHour = 0;
  let weekly = 0;
  for (const k of keys) {
    fiveHour += k.fiveHour;
    weekly += weeklyAllowance(k);
  }
  return [
    {
      window: "5h",
      capacity: plan.fiveHour,
      allowed: fiveHour,
      used: used.fiveHour,
      allowedRatio: ratio(fiveHour, plan.fiveHour),
      usedRatio: ratio(used.fiveHour, plan.fiveHour),
    },
    {
      window: "weekly",
      capacity: plan.weekly,
      allowed: weekly,
      used: used.weekly,
      allowedRatio: ratio(weekly, plan.weekly),
      usedRatio: ratio(used.weekly, plan.weekly),
    },
  ];
}
