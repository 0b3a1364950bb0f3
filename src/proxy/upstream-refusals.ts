// What an upstream's 429 means, as one table. Two kinds matter to a client:
//
// - `busy`: too many requests at once, or a rate limit that resets within a
//   minute. Retrying shortly helps; it says nothing about the key's quota.
// - `spent`: the upstream plan (shared by every key of the gateway) is used
//   up until a time, often hours away. Retrying does not help.
//
// Bodies and headers as the providers document them:
// - Z.AI (docs.z.ai, API error codes): HTTP 429 with
//   `{"error":{"code":"1302","message":"High concurrency usage of this API, …"}}`
//   for too much concurrency; `1308` "Usage limit reached for 5 hour. Your
//   limit will reset at 2026-09-29 23:10:05" when the coding plan's 5-hour
//   allowance is spent (a zoneless time in China Standard Time, UTC+8);
//   `1310` the same for the weekly or monthly allowance.
// - OpenAI (platform docs, error codes and rate limits): 429 with
//   `{"error":{"type":…,"code":"rate_limit_exceeded","message":"… Please try
//   again in 1.2s. …"}}` and `x-ratelimit-reset-requests` / `-tokens` as
//   durations ("1s", "6m0s"); `insufficient_quota` when the account's
//   credit or monthly budget is spent.
// - Anthropic (docs, rate limits and errors): 429 with
//   `{"type":"error","error":{"type":"rate_limit_error","message":…}}` and
//   `retry-after` in seconds.

export type Refusal =
  | { kind: "busy"; source: string; waitMs: number }
  | { kind: "spent"; source: string; until: number | null };

/** A rate limit whose reset is at most this far away counts as `busy`. */
export const SHORT_RESET_MS = 60_000;
/** The wait to suggest for `busy` when the upstream names none. */
export const DEFAULT_BUSY_WAIT_MS = 2_000;

interface Parsed {
  /** Z.AI's business code or OpenAI's `code`, as a string. */
  code: string | null;
  /** OpenAI's or Anthropic's error type. */
  type: string | null;
  message: string;
}

interface Rule {
  /** Names the upstream's signal, for the message and the log. */
  source: string;
  matches: (e: Parsed) => boolean;
  classify: (e: Parsed, headers: Headers, now: number) => Refusal;
}

const byResetTime =
  (source: string) =>
  (e: Parsed, headers: Headers, now: number): Refusal => {
    const wait = resetWaitMs(e.message, headers);
    if (wait !== null && wait > SHORT_RESET_MS) return { kind: "spent", source, until: now + wait };
    return { kind: "busy", source, waitMs: wait ?? DEFAULT_BUSY_WAIT_MS };
  };

export const REFUSAL_RULES: readonly Rule[] = [
  {
    source: "Z.AI 1302 (too many requests at once)",
    matches: (e) => e.code === "1302",
    classify: (_e, headers) => ({
      kind: "busy",
      source: "Z.AI 1302 (too many requests at once)",
      waitMs: retryAfterMs(headers) ?? DEFAULT_BUSY_WAIT_MS,
    }),
  },
  {
    source: "Z.AI 1308 (the plan's 5-hour allowance is spent)",
    matches: (e) => e.code === "1308",
    classify: (e) => ({
      kind: "spent",
      source: "Z.AI 1308 (the plan's 5-hour allowance is spent)",
      until: zaiResetTime(e.message),
    }),
  },
  {
    source: "Z.AI 1310 (the plan's weekly or monthly allowance is spent)",
    matches: (e) => e.code === "1310",
    classify: (e) => ({
      kind: "spent",
      source: "Z.AI 1310 (the plan's weekly or monthly allowance is spent)",
      until: zaiResetTime(e.message),
    }),
  },
  {
    source: "OpenAI insufficient_quota (the account's credit or budget is spent)",
    matches: (e) => e.code === "insufficient_quota" || e.type === "insufficient_quota",
    classify: () => ({
      kind: "spent",
      source: "OpenAI insufficient_quota (the account's credit or budget is spent)",
      until: null,
    }),
  },
  {
    source: "OpenAI rate_limit_exceeded",
    matches: (e) => e.code === "rate_limit_exceeded",
    classify: byResetTime("OpenAI rate_limit_exceeded"),
  },
  {
    source: "Anthropic rate_limit_error",
    matches: (e) => e.type === "rate_limit_error",
    classify: byResetTime("Anthropic rate_limit_error"),
  },
];

/** The upstream's answer classified, or null when it is none of the above (passed on as it is). */
export function classifyRefusal(
  status: number,
  headers: Headers,
  body: string,
  now: number,
): Refusal | null {
  if (status !== 429) return null;
  const parsed = parseError(body);
  if (parsed === null) return null;
  const rule = REFUSAL_RULES.find((r) => r.matches(parsed));
  return rule ? rule.classify(parsed, headers, now) : null;
}

function parseError(body: string): Parsed | null {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return null;
  }
  const error = (json as { error?: unknown } | null)?.error;
  if (typeof error !== "object" || error === null) return null;
  const e = error as Record<string, unknown>;
  const code = typeof e.code === "string" || typeof e.code === "number" ? String(e.code) : null;
  return {
    code,
    type: typeof e.type === "string" ? e.type : null,
    message: typeof e.message === "string" ? e.message : "",
  };
}

/** `retry-after` (seconds or an HTTP date) or OpenAI's `retry-after-ms`. */
function retryAfterMs(headers: Headers, now = Date.now()): number | null {
  const ms = Number(headers.get("retry-after-ms"));
  if (headers.has("retry-after-ms") && Number.isFinite(ms) && ms >= 0) return ms;
  const raw = headers.get("retry-after");
  if (raw === null) return null;
  if (/^\d+(\.\d+)?$/.test(raw.trim())) return Number(raw) * 1000;
  const at = Date.parse(raw);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** OpenAI's durations: "1s", "6m0s", "1h2m3.5s", "20ms". */
export function parseDuration(text: string): number | null {
  const m = /^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$/.exec(text.trim());
  if (!m || text.trim() === "") return null;
  const [, h, min, s, ms] = m;
  return (
    Number(h ?? 0) * 3_600_000 + Number(min ?? 0) * 60_000 + Number(s ?? 0) * 1000 + Number(ms ?? 0)
  );
}

/** The longest wait the upstream names: its headers, else "try again in 1.2s" in the message. */
function resetWaitMs(message: string, headers: Headers): number | null {
  const waits: number[] = [];
  const after = retryAfterMs(headers);
  if (after !== null) waits.push(after);
  for (const name of ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]) {
    const v = headers.get(name);
    const d = v === null ? null : parseDuration(v);
    if (d !== null) waits.push(d);
  }
  const inMessage = /try again in ([\dhms.]+)/i.exec(message)?.[1];
  const d = inMessage ? parseDuration(inMessage) : null;
  if (d !== null) waits.push(d);
  return waits.length ? Math.max(...waits) : null;
}

/** Z.AI's zoneless reset time is China Standard Time (UTC+8, no daylight saving). */
const ZAI_UTC_OFFSET = "+08:00";

/** "… reset at 2026-09-29 23:10:05" (or with a zone) as epoch ms; null when absent. */
export function zaiResetTime(message: string): number | null {
  const m = /reset at (\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(Z|[+-]\d{2}:?\d{2})?/i.exec(
    message,
  );
  if (!m) return null;
  const zone = m[3] ?? ZAI_UTC_OFFSET;
  const at = Date.parse(`${m[1]}T${m[2]}${zone}`);
  return Number.isNaN(at) ? null : at;
}
