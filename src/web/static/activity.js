// The audit log in the dashboard: the "Activity" section (every change, newest
// first) and a key's own history in its detail view. Text only, never markup.

import { byId, el } from "./dom.js";
import { formatDateTime } from "./format.js";

const PAGE_SIZE = 20;

/** `limit: 1000 → 2000, name: "a" → "b"`, or what a data operation moved. */
export function describeChanges(changes) {
  if (!changes) return "";
  return Object.entries(changes)
    .map(([field, v]) =>
      v && typeof v === "object" && "before" in v
        ? `${field}: ${JSON.stringify(v.before)} → ${JSON.stringify(v.after)}`
        : `${field}: ${JSON.stringify(v)}`,
    )
    .join(", ");
}

/** One entry as a list item: when, who, what, and which key. */
export function activityItem(e, { withKey = true } = {}) {
  const key = e.key_id ? `${e.key_name ?? "(purged)"} (${e.key_prefix ?? e.key_id})` : "";
  return el(
    "li",
    { dataset: { action: e.action } },
    el("time", { datetime: e.at, class: "muted small" }, formatDateTime(e.at)),
    " ",
    el("strong", {}, e.action),
    withKey && key ? ` ${key}` : "",
    el("span", { class: "muted small" }, ` by ${e.actor.kind} ${e.actor.name}`),
    e.changes ? el("div", { class: "small" }, describeChanges(e.changes)) : null,
  );
}

export function createActivity({ api }) {
  const list = byId("activity-list");
  const error = byId("activity-error");
  const more = byId("activity-more");
  let shown = 0;

  async function load(append = false) {
    error.textContent = "";
    try {
      const page = await api.audit({ limit: PAGE_SIZE, offset: append ? shown : 0 });
      const items = page.entries.map((e) => activityItem(e));
      if (append) list.append(...items);
      else list.replaceChildren(...items);
      shown = (append ? shown : 0) + page.entries.length;
      more.hidden = shown >= page.total;
      if (page.total === 0) list.replaceChildren(el("li", { class: "muted" }, "No changes yet."));
    } catch (err) {
      if (err.status !== 401) error.textContent = err.message;
    }
  }

  more.addEventListener("click", () => void load(true));
  return { load: () => load(false) };
}
