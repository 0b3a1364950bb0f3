// Numbers, dates and durations for people, in the browser's locale.

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export function formatInt(n) {
  return integer.format(n);
}

export function formatCompact(n) {
  return compact.format(n);
}

export function formatDateTime(iso) {
  return iso ? dateTime.format(new Date(iso)) : "never";
}

/** "in 3 days", "2 hours ago", "in 5 minutes" (the largest unit that fits). */
export function formatRelative(iso, now = Date.now()) {
  const ms = Date.parse(iso) - now;
  const abs = Math.abs(ms);
  if (abs >= DAY) return relative.format(Math.round(ms / DAY), "day");
  if (abs >= HOUR) return relative.format(Math.round(ms / HOUR), "hour");
  if (abs >= MINUTE) return relative.format(Math.round(ms / MINUTE), "minute");
  return relative.format(Math.round(ms / 1000), "second");
}

/** "2 h 13 min", "4 min", "under a minute". */
export function formatDuration(ms) {
  if (ms < MINUTE) return "under a minute";
  const minutes = Math.round(ms / MINUTE);
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  if (h === 0) return `${m} min`;
  return m === 0 ? `${h} h` : `${h} h ${m} min`;
}

/** The expiry state of a key as a short phrase: "expires in 3 days", "expired 2 hours ago". */
export function expiryText(expiresAt, now = Date.now()) {
  if (!expiresAt) return "never expires";
  const when = formatRelative(expiresAt, now);
  return Date.parse(expiresAt) <= now ? `expired ${when}` : `expires ${when}`;
}

/** "200k", "2M", "100,000", "1.5m" -> a whole number of tokens; NaN when it is none. */
export function parseTokenAmount(text) {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$/.exec(text.replaceAll(/[,_\s]/g, ""));
  if (match === null) return Number.NaN;
  const unit = { "": 1, k: 1e3, m: 1e6 }[match[2].toLowerCase()];
  const n = Math.round(Number(match[1]) * unit);
  return Number.isSafeInteger(n) ? n : Number.NaN;
}

/** The usage ranges both pages offer, with the bucket step the server sums over. */
export const RANGES = {
  "5h": { ms: 5 * HOUR, step: "5m", stepMs: 5 * MINUTE, per: "5 minutes", label: "last 5 hours" },
  "24h": { ms: DAY, step: "1h", stepMs: HOUR, per: "hour", label: "last 24 hours" },
  "30d": { ms: 30 * DAY, step: "1d", stepMs: DAY, per: "day", label: "last 30 days" },
};

/**
 * Query string for a usage endpoint over a named range ending now. The server
 * floors both ends to the step and serves [from, to), so `to` is the end of
 * the current step: the bucket in progress is drawn too.
 */
export function rangeQuery(name, now = Date.now()) {
  const range = RANGES[name];
  const to = (Math.floor(now / range.stepMs) + 1) * range.stepMs;
  const params = new URLSearchParams({
    from: new Date(to - range.ms).toISOString(),
    to: new Date(to).toISOString(),
    step: range.step,
  });
  return params.toString();
}
