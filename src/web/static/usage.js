// The key holder's page: paste a key, see its quota, expiry and last 24 hours.
// The key lives only in this tab's sessionStorage and goes out only in the
// Authorization header, never in a URL.

import { drawUsageChart } from "./chart.js";
import { byId, STATUS_CLASS, show, usageBar } from "./dom.js";
import {
  expiryText,
  formatDateTime,
  formatDuration,
  formatInt,
  formatRelative,
  rangeQuery,
} from "./format.js";

const STORAGE_KEY = "tollgate.usage.key";
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });

const form = byId("key-form");
const input = byId("api-key");
const error = byId("key-error");
const entry = byId("key-entry");
const result = byId("result");
const forget = byId("forget");
const refresh = byId("refresh");

class KeyRequestError extends Error {}

/**
 * What to tell the holder for a refused /stats call. A disabled or expired key
 * is not refused there (its holder may look: /stats says so in its fields), so
 * there is no 403 to explain.
 */
function refusal(status, retryAfter) {
  if (status === 401) {
    return "This key is not known to this gateway. Check that you pasted all of it (it starts with pk_).";
  }
  if (status === 429) {
    return `Too many attempts. Try again in ${formatDuration(Number(retryAfter ?? 60) * 1000)}.`;
  }
  if (status >= 500) return "The gateway cannot answer right now. Try again in a moment.";
  return `The gateway refused the request (HTTP ${status}).`;
}

async function getJson(path, key) {
  let res;
  try {
    res = await fetch(path, {
      headers: { authorization: `Bearer ${key}` },
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new KeyRequestError("Could not reach the gateway. Check your connection.");
  }
  if (!res.ok) {
    const err = new KeyRequestError(refusal(res.status, res.headers.get("retry-after")));
    err.status = res.status;
    throw err;
  }
  return res.json();
}

function setText(id, text) {
  byId(id).textContent = text;
}

/**
 * The key's status as the dashboard shows it: disabled wins over expired.
 * Gateways older than `is_disabled` do not send it: treated as not disabled.
 */
function keyStatus(stats) {
  if (stats.is_disabled === true) return "disabled";
  return stats.is_expired ? "expired" : "active";
}

function statusNote(stats, state, now) {
  if (state === "disabled") {
    return "This key has been disabled. Requests with it are refused; ask whoever gave it to you to enable it again or for a new one.";
  }
  if (state === "expired") {
    return `This key ${expiryText(stats.expiry_date, now)} (${formatDateTime(stats.expiry_date)}). Requests with it are refused; ask whoever gave it to you for a new one.`;
  }
  if (stats.current_usage.remaining_tokens === 0) {
    return "The quota is spent: requests are refused until enough of the last 5 hours' usage ages out.";
  }
  if (stats.weekly_usage && stats.weekly_usage.remaining_tokens === 0) {
    return "The weekly quota is spent: requests are refused until enough of the last 7 days' usage ages out.";
  }
  return "";
}

function renderStats(stats, now) {
  const usage = stats.current_usage;
  const used = usage.tokens_used_in_current_window;
  setText("key-name", stats.name);
  setText("key-prefix", stats.key);
  const state = keyStatus(stats);
  const status = byId("key-status");
  status.textContent = state;
  status.className = `badge ${STATUS_CLASS[state]}`;

  const note = byId("status-note");
  note.textContent = statusNote(stats, state, now);
  show(note, note.textContent !== "");

  setText("window-used", formatInt(used));
  setText("window-limit", formatInt(stats.token_limit_per_5h));
  byId("window-bar").replaceChildren(
    usageBar(used, stats.token_limit_per_5h, "Tokens used in the last 5 hours"),
  );
  setText("remaining", `${formatInt(usage.remaining_tokens)} tokens`);
  const endsAt = Date.parse(usage.window_ends_at);
  setText(
    "frees-up",
    used === 0
      ? "nothing used in the last 5 hours"
      : `from ${timeOnly.format(endsAt)} (in ${formatDuration(Math.max(0, endsAt - now))})`,
  );
  const week = stats.weekly_usage;
  show(byId("weekly-row"), Boolean(week));
  if (week) {
    const weekEnds = Date.parse(week.window_ends_at);
    setText(
      "weekly",
      `${formatInt(week.tokens_used_in_current_window)} of ${formatInt(stats.token_limit_per_week)} tokens used, ${formatInt(week.remaining_tokens)} left` +
        (week.tokens_used_in_current_window > 0
          ? `; frees up from ${formatDateTime(new Date(weekEnds).toISOString())}`
          : ""),
    );
  }
  setText(
    "expiry",
    stats.expiry_date
      ? `${expiryText(stats.expiry_date, now)} (${formatDateTime(stats.expiry_date)})`
      : "never expires",
  );
  setText("model", stats.model);
  setText("lifetime", formatInt(stats.total_lifetime_tokens));
  setText("requests", formatInt(stats.total_requests));
  setText("last-used", stats.last_used ? formatRelative(stats.last_used, now) : "never");
  setText("updated", `Updated at ${timeOnly.format(now)}.`);
}

async function renderHistory(key) {
  const total = byId("chart-total");
  const chart = byId("chart");
  try {
    const history = await getJson(`/stats/usage?${rangeQuery("24h")}`, key);
    total.textContent = `${formatInt(history.total_tokens)} tokens in ${formatInt(history.total_requests)} requests over the last 24 hours.`;
    drawUsageChart(chart, history, "Tokens per hour, last 24 hours");
  } catch (err) {
    total.textContent = `History unavailable: ${err.message}`;
    chart.replaceChildren();
  }
}

async function load(key) {
  error.textContent = "";
  try {
    const stats = await getJson("/stats", key);
    sessionStorage.setItem(STORAGE_KEY, key);
    const now = Date.now();
    renderStats(stats, now);
    show(entry, false);
    show(result);
    show(forget);
    show(refresh);
    await renderHistory(key);
  } catch (err) {
    if (!(err instanceof KeyRequestError)) throw err;
    // An unknown key is not kept; a passing outage keeps the one that worked.
    if (err.status === 401) forgetKey();
    error.textContent = err.message;
    show(entry);
    show(result, false);
  }
}

function forgetKey() {
  sessionStorage.removeItem(STORAGE_KEY);
  show(result, false);
  show(forget, false);
  show(refresh, false);
  show(entry);
}

form.addEventListener("submit", (event) => {
  // Never let the browser submit the form: the key must not travel in a URL or body.
  event.preventDefault();
  const key = input.value.trim();
  input.value = "";
  if (key !== "") void load(key);
});

forget.addEventListener("click", () => {
  forgetKey();
  error.textContent = "";
  input.focus();
});

refresh.addEventListener("click", () => {
  const key = sessionStorage.getItem(STORAGE_KEY);
  if (key) void load(key);
});

const saved = sessionStorage.getItem(STORAGE_KEY);
if (saved) void load(saved);
