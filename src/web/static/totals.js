// Usage across all keys: tokens and requests in a range, key counts, a chart
// and the keys that used the most.

import { drawUsageChart, rangeSwitch } from "./chart.js";
import { byId, el, usageBar } from "./dom.js";
import { formatInt, RANGES, rangeQuery } from "./format.js";
import { modelTable } from "./models.js";

const TOP = 5;

function topKey(entry, most) {
  return el(
    "li",
    {},
    el(
      "span",
      { class: "key-name" },
      entry.name,
      " ",
      el("code", { class: "muted small" }, entry.prefix),
    ),
    usageBar(entry.tokens, most, `Tokens of ${entry.name}`, { share: true }),
    el("span", { class: "num" }, formatInt(entry.tokens)),
  );
}

const WINDOW_NAMES = { "5h": "5 hours", weekly: "7 days" };

// One window of the plan: used against what it delivers, and what the keys
// are allowed against it (above 1x, the keys may ask for more than it gives).
function planWindow(w) {
  const name = WINDOW_NAMES[w.window] ?? w.window;
  const allowed =
    w.capacity === null
      ? `keys allowed ${formatInt(w.allowed)}; plan not declared`
      : `keys allowed ${w.allowed_ratio}x the plan${w.allowed_ratio > 1 ? " (oversubscribed)" : ""}`;
  return el(
    "li",
    {},
    el("span", { class: "key-name" }, name, " ", el("span", { class: "muted small" }, allowed)),
    usageBar(w.used, w.capacity ?? w.allowed, `Used in ${name} against the plan`),
    el(
      "span",
      { class: "num" },
      w.capacity === null ? formatInt(w.used) : `${formatInt(w.used)} / ${formatInt(w.capacity)}`,
    ),
  );
}

export function createTotals({ api }) {
  const error = byId("totals-error");
  const range = rangeSwitch(byId("totals-range"), "24h", () => void load());

  async function load() {
    const name = range();
    try {
      const usage = await api.usage(rangeQuery(name));
      if (range() !== name) return;
      error.textContent = "";
      byId("total-tokens").textContent = formatInt(usage.total_tokens);
      byId("total-requests").textContent = formatInt(usage.total_requests);
      byId("keys-active").textContent =
        `${formatInt(usage.keys_active)} of ${formatInt(usage.keys_total)}`;
      byId("keys-with-usage").textContent = formatInt(usage.keys_with_usage);
      drawUsageChart(
        byId("totals-chart"),
        usage,
        `Tokens per ${RANGES[name].per} across all keys, ${RANGES[name].label}`,
      );
      const top = usage.by_key.slice(0, TOP);
      const most = top[0]?.tokens ?? 0;
      byId("top-keys").replaceChildren(
        ...(top.length > 0
          ? top.map((entry) => topKey(entry, most))
          : [el("li", { class: "muted" }, "No usage in this range.")]),
      );
      byId("plan-windows").replaceChildren(...(usage.plan ?? []).map(planWindow));
      byId("totals-models").replaceChildren(modelTable(usage.by_model));
    } catch (err) {
      if (err.status !== 401) error.textContent = err.message;
    }
  }

  return { load };
}
