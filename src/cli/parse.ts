import { InvalidArgumentError } from "commander";

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

/** Expiry: an ISO 8601 date or date-time, a duration from now (`30d`, `12h`), or `never`. */
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
  if (!/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(v)) {
    throw new InvalidArgumentError(
      "expected an ISO date (2027-01-31 or 2027-01-31T18:00:00Z), 30d, or never",
    );
  }
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new InvalidArgumentError(`not a valid date: ${v}`);
  return t;
}
