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

/** `--models a,b`: names or globs, comma-separated; '' = none (any model). */
export function parseModels(value: string): string[] {
  const models = value
    .split(",")
    .map((m) => m.trim())
    .filter((m) => m !== "");
  if (models.some((m) => m.length > 200)) {
    throw new InvalidArgumentError("a model name is at most 200 characters");
  }
  return models;
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
const UNIT_MS = { h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

/**
 * A time as the CLI takes it everywhere: a duration counted from now (`30d`,
 * `12h`, `2w`) into the future (`direction` 1) or the past (-1), or an ISO
 * 8601 date or date-time read exactly as the admin API reads one (the same
 * schema: without an offset it is UTC, whatever the machine's time zone; a
 * day the month lacks is refused), so one text means one instant in both.
 */
export function parseTime(value: string, direction: 1 | -1, now = Date.now()): number {
  const v = value.trim();
  const rel = /^(\d+)([dhw])$/i.exec(v);
  if (rel?.[1] && rel[2]) {
    return now + direction * Number(rel[1]) * UNIT_MS[rel[2].toLowerCase() as keyof typeof UNIT_MS];
  }
  const parsed = instant.safeParse(v);
  if (!parsed.success) {
    const problem = parsed.error.issues[0]?.message ?? "not a valid date";
    const ago = direction < 0 ? " ago" : "";
    throw new InvalidArgumentError(`${problem}, or a duration such as 30d, 12h or 2w${ago}`);
  }
  return parsed.data;
}

/** Expiry: a time (durations count forward), or `never`. */
export function parseExpiry(value: string, now = Date.now()): number | null {
  if (/^(never|none)$/i.test(value.trim())) return null;
  try {
    return parseTime(value, 1, now);
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message}, or never`);
  }
}

/** The expiry of a new key: a past one would make a key that never works. */
export function parseNewExpiry(value: string, now = Date.now()): number | null {
  const at = parseExpiry(value, now);
  if (at !== null && at <= now) {
    throw new InvalidArgumentError(
      `${new Date(at).toISOString()} is in the past, so the key would never work; give a later time (e.g. 30d). ` +
        "To stop a key: tollgate keys update KEY --disable",
    );
  }
  return at;
}

/** A key's quota: 0 would refuse every request, which is what --disable is for. */
export function parseLimit(value: string): number {
  const n = parseTokens(value);
  if (n === 0) {
    throw new InvalidArgumentError(
      "a limit of 0 would refuse every request; give at least 1. To stop a key: tollgate keys update KEY --disable",
    );
  }
  return n;
}

/** A start or end in the past (`--from 30d` is 30 days ago), as the ISO text the usage query takes. */
export function parsePastTime(value: string, now = Date.now()): string {
  return new Date(parseTime(value, -1, now)).toISOString();
}
