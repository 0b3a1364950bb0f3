// The keys table: search, status filter, pagination, one row per key with its
// expiry state, a usage bar against its quota, and its actions.

import { byId, el, STATUS_CLASS, show, usageBar } from "./dom.js";
import { expiryText, formatInt } from "./format.js";

const PAGE_SIZE = 20;
const SEARCH_DELAY_MS = 250;
const SOON_MS = 7 * 24 * 3_600_000;

function statusCell(key, now) {
  const expiry = el("div", { class: "muted small" }, expiryText(key.expires_at, now));
  const expiresAt = key.expires_at ? Date.parse(key.expires_at) : Number.POSITIVE_INFINITY;
  if (key.status === "active" && expiresAt - now < SOON_MS) expiry.className = "small badge-warn";
  return el(
    "td",
    { "data-label": "Status" },
    el("span", { class: `badge ${STATUS_CLASS[key.status] ?? ""}` }, key.status),
    expiry,
  );
}

function usageCell(key) {
  const used = key.usage.tokens_used_in_current_window;
  const limit = key.token_limit_per_5h;
  return el(
    "td",
    { "data-label": "Last 5 hours", class: "usage-cell" },
    usageBar(used, limit, `Tokens used by ${key.name} in the last 5 hours`),
    el("span", { class: "small" }, `${formatInt(used)} / ${formatInt(limit)}`),
    key.weekly_usage
      ? el(
          "span",
          { class: "small" },
          ` · week ${formatInt(key.weekly_usage.tokens_used_in_current_window)} / ${formatInt(key.token_limit_per_week)}`,
        )
      : null,
  );
}

/** `actions`: {detail, edit, rotate, revoke}, each called with the key object. */
export function createKeysTable({ api, actions }) {
  const body = byId("keys-body");
  const search = byId("search");
  const statusFilter = byId("status-filter");
  const prev = byId("prev-page");
  const next = byId("next-page");
  const pageInfo = byId("page-info");
  const empty = byId("keys-empty");
  const error = byId("keys-error");
  const state = { offset: 0, total: 0 };
  let searchTimer;
  let loading = 0;

  function row(key, now) {
    const button = (label, action, extra = {}) =>
      el(
        "button",
        {
          type: "button",
          class: extra.class ?? "small",
          "aria-label": `${label} ${key.name}`,
          onclick: () => actions[action](key),
        },
        label,
      );
    return el(
      "tr",
      { dataset: { keyId: key.id } },
      el(
        "td",
        { "data-label": "Name" },
        el("div", { class: "key-name" }, key.name),
        key.model ? el("div", { class: "muted small" }, `model: ${key.model}`) : null,
      ),
      el("td", { "data-label": "Prefix" }, el("code", {}, key.prefix)),
      statusCell(key, now),
      usageCell(key),
      el(
        "td",
        { "data-label": "Lifetime tokens", class: "num" },
        formatInt(key.total_lifetime_tokens),
        el("div", { class: "muted small" }, `${formatInt(key.total_requests)} requests`),
      ),
      el(
        "td",
        { "data-label": "Actions" },
        el(
          "div",
          { class: "actions" },
          button("Usage", "detail"),
          // A revoked key is kept for its history only: nothing to change.
          key.status === "revoked" ? null : button("Edit", "edit"),
          key.status === "revoked" ? null : button("Rotate", "rotate"),
          key.status === "revoked" ? null : button("Revoke", "revoke", { class: "small danger" }),
        ),
      ),
    );
  }

  async function load() {
    const ticket = ++loading;
    const query = { limit: PAGE_SIZE, offset: state.offset, status: statusFilter.value };
    const text = search.value.trim();
    if (text !== "") query.search = text;
    let page;
    try {
      page = await api.listKeys(query);
    } catch (err) {
      if (ticket === loading && err.status !== 401) error.textContent = err.message;
      return;
    }
    // A slower answer to an older query must not overwrite a newer one.
    if (ticket !== loading) return;
    if (page.keys.length === 0 && state.offset > 0 && page.total > 0) {
      state.offset = Math.max(0, (Math.ceil(page.total / PAGE_SIZE) - 1) * PAGE_SIZE);
      return load();
    }
    error.textContent = "";
    state.total = page.total;
    const now = Date.now();
    body.replaceChildren(...page.keys.map((k) => row(k, now)));
    show(empty, page.keys.length === 0);
    const first = page.total === 0 ? 0 : state.offset + 1;
    const last = state.offset + page.keys.length;
    pageInfo.textContent = `${formatInt(first)}–${formatInt(last)} of ${formatInt(page.total)}`;
    prev.disabled = state.offset === 0;
    next.disabled = last >= page.total;
  }

  function restart() {
    state.offset = 0;
    void load();
  }

  byId("filter-form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(searchTimer);
    restart();
  });
  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(restart, SEARCH_DELAY_MS);
  });
  statusFilter.addEventListener("change", restart);
  prev.addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    void load();
  });
  next.addEventListener("click", () => {
    state.offset += PAGE_SIZE;
    void load();
  });

  return { load };
}
