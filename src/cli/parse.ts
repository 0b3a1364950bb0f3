import { InvalidArgumentError } from "commander";
import { instant } from "../admin/schemas.ts";

// Option parsers for the CLI: friendly forms in, plain values out.

const SUFFIX: Record<string, number> = { k: 1e3, m: 1e6, g: 1e9 };

/** Token counts: `150000`, `150_000`, `150k`, `2.5M`. */
export function parseTokens(value: string): number {
  const m = /^(\d[\d_]*(?:\.\d+)?)([kmg])?$/i.exec(value.trim());
  if (!m?.[1]) throw new InvalidArgumentError("expected a token count such as 100000, 100k or 2M");
  const n = Number(m[1].replaceAll("_", "")) * (m[2] ? (SUFFIX[m[2].toLowerCase()] ?? 1) : 1);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError("expected a whole number of tokens");
  return n;
}

/** Requests in flight at once: a whole number from 1, as the admin API's `max_concurrent`. */
export function parseConcurrency(value: string): number {
  const v = value.trim();
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 2_147_483_647) {
    throw new InvalidArgumentError("expected a whole number of requests, at least 1");
  }
  return n;
}

/**
 * Expiry: a duration from now (`30d`, `12h`, `2w`), `never`, or an ISO 8601
 * date or date-time read exactly as the admin API reads `expires_at` (the
 * same schema: without an offset it is UTC, whatever the machine's time zone;
 * a day the month lacks is refused), so one text means one instant in both.
 */
export function parseExpiry(value: string, now = Date.now()): number | null {
  const v = value.trim();
  if (/^(never|none)$/i.test(v)) return null;
  const rel = /^(\d+)([dhw])$/i.exec(v);
  if (rel?.[1] && rel[2]) {
    const unit = { h: 3_600_000, d: 86_400_000, w: 604_800_000 }[
      rel[2].toLowerCase() as "h" | "d" | "w"
    ];
    return now + Number(rel[1]) * unit;
  }
  const parsed = instant.safeParse(v);
  if (!parsed.success) {
    const problem = parsed.error.issues[0]?.message ?? "not a valid date";
    throw new InvalidArgumentError(`${problem}, or a duration such as 30d, 12h, 2w, or never`);
  }
  return parsed.data;
}
