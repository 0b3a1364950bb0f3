// One key in detail: its facts and a chart of its tokens over 5 h, 24 h or 30 d.

import { activityItem } from "./activity.js";
import { drawUsageChart, rangeSwitch } from "./chart.js";
import { byId, el, STATUS_CLASS } from "./dom.js";
import { expiryText, formatDateTime, formatInt, RANGES, rangeQuery } from "./format.js";
import { modelTable } from "./models.js";

function facts(key, now) {
  const rows = [
    ["Limit per 5 hours", `${formatInt(key.token_limit_per_5h)} tokens`],
    ["Used in the last 5 hours", formatInt(key.usage.tokens_used_in_current_window)],
    ["Remaining", formatInt(key.usage.remaining_tokens)],
    ...(key.weekly_usage
      ? [
          ["Limit per 7 days", `${formatInt(key.token_limit_per_week)} tokens`],
          ["Used in the last 7 days", formatInt(key.weekly_usage.tokens_used_in_current_window)],
          ["Remaining this week", formatInt(key.weekly_usage.remaining_tokens)],
        ]
      : [["Limit per 7 days", "none"]]),
    ["Model override", key.model ?? "none"],
    ["Allowed models", key.allowed_models ? key.allowed_models.join(", ") : "any"],
    [
      "Concurrent requests",
      key.max_concurrent === null ? "gateway default" : `at most ${formatInt(key.max_concurrent)}`,
    ],
    [
      "Expiry",
      key.expires_at
        ? `${expiryText(key.expires_at, now)} (${formatDateTime(key.expires_at)})`
        : "never expires",
    ],
    ["Created", formatDateTime(key.created_at)],
    ["Last used", formatDateTime(key.last_used)],
    ["Lifetime tokens", formatInt(key.total_lifetime_tokens)],
    ["Requests", formatInt(key.total_requests)],
  ];
  return rows.map(([term, value]) => el("div", {}, el("dt", {}, term), el("dd", {}, value)));
}

export function createKeyDetail({ api }) {
  const dialog = byId("detail-dialog");
  const total = byId("detail-total");
  const chart = byId("detail-chart");
  const error = byId("detail-error");
  let current = null;
  const range = rangeSwitch(byId("detail-range"), "24h", () => void loadChart());

  async function loadChart() {
    if (current === null) return;
    const key = current;
    const name = range();
    error.textContent = "";
    try {
      const usage = await api.keyUsage(key.id, rangeQuery(name));
      if (current !== key || range() !== name) return;
      total.textContent = `${formatInt(usage.total_tokens)} tokens in ${formatInt(usage.total_requests)} requests over the ${RANGES[name].label}.`;
      drawUsageChart(
        chart,
        usage,
        `Tokens per ${RANGES[name].per}, ${RANGES[name].label}, key ${key.name}`,
      );
      byId("detail-models").replaceChildren(modelTable(usage.by_model));
    } catch (err) {
      if (err.status !== 401) error.textContent = err.message;
    }
  }

  /** Shows `key`; the chart is fetched afresh each time it opens. */
  function open(key) {
    current = key;
    byId("detail-title").textContent = key.name;
    byId("detail-prefix").textContent = key.prefix;
    const status = byId("detail-status");
    status.textContent = key.status;
    status.className = `badge ${STATUS_CLASS[key.status] ?? ""}`;
    byId("detail-facts").replaceChildren(...facts(key, Date.now()));
    total.textContent = "";
    chart.replaceChildren();
    byId("detail-models").replaceChildren();
    if (!dialog.open) dialog.showModal();
    void loadChart();
    void loadHistory(key);
  }

  /** The key's own audit entries, newest first. */
  async function loadHistory(key) {
    const history = byId("detail-history");
    history.replaceChildren();
    try {
      const page = await api.audit({ key: key.id, limit: 50 });
      if (current !== key) return;
      history.replaceChildren(...page.entries.map((e) => activityItem(e, { withKey: false })));
    } catch (err) {
      if (err.status !== 401) error.textContent = err.message;
    }
  }

  dialog.addEventListener("close", () => {
    current = null;
  });

  /** Re-reads the key (after a refresh) while the dialog is open. */
  async function refresh() {
    if (current === null) return;
    try {
      open(await api.getKey(current.id));
    } catch (err) {
      if (err.status === 404) dialog.close();
    }
  }

  return { open, refresh };
}
