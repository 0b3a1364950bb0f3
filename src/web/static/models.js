// Usage per model: raw tokens by kind, weighted units, spend where priced.

import { el } from "./dom.js";
import { formatInt } from "./format.js";

const KINDS = ["input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens"];
const HEAD = ["Model", "Input", "Cache read", "Cache write", "Output", "Units", "Requests"];

// Micro-units: six decimals below one cent, so a small spend never shows as 0.
const spendText = (micros) => (micros / 1e6).toFixed(micros < 10_000 ? 6 : 4);

export function modelTable(view) {
  if (!view || view.models.length === 0) return el("p", { class: "muted" }, "No usage per model.");
  const priced = view.currency !== null;
  const head = priced ? [...HEAD, `Spend (${view.currency})`] : HEAD;
  const row = (m) =>
    el(
      "tr",
      {},
      el("th", { scope: "row" }, m.model),
      [...KINDS.map((k) => m[k]), m.units, m.requests].map((n) =>
        el("td", { class: "num" }, formatInt(n)),
      ),
      priced && el("td", { class: "num" }, spendText(m.spend_micros)),
    );
  return el(
    "table",
    { class: "models" },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        head.map((h) => el("th", { scope: "col" }, h)),
      ),
    ),
    el("tbody", {}, view.models.map(row)),
  );
}
