// DOM helpers. Text always goes in as text nodes or textContent, never as HTML:
// key names and every other string from the server are user input.

/**
 * Makes an element. Props: `class`, `dataset`, `on<event>` listeners, anything
 * else as an attribute (`true` = present, false/null/undefined = absent).
 * Children: nodes, or strings and numbers as text.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(typeof child === "object" ? child : String(child));
  }
  return node;
}

/** Badge colour per key status. */
export const STATUS_CLASS = {
  active: "badge-ok",
  expired: "badge-bad",
  disabled: "badge-warn",
  revoked: "badge-bad",
};

export function byId(id) {
  const node = document.getElementById(id);
  if (node === null) throw new Error(`missing #${id}`);
  return node;
}

/** Shows or hides an element (the `hidden` attribute; CSS must not override it). */
export function show(node, visible = true) {
  node.hidden = !visible;
}

/**
 * A usage bar: `used` of `limit`, as an ARIA meter (`share`: a comparison, not a quota). The fill's width is set
 * from script (allowed by the page's CSP, unlike a style attribute in HTML).
 */
export function usageBar(used, limit, label, { share = false } = {}) {
  const ratio = limit > 0 ? Math.min(1, used / limit) : used > 0 ? 1 : 0;
  const fill = el("span", { class: "bar-fill" });
  fill.style.width = `${(ratio * 100).toFixed(1)}%`;
  // A share of the busiest key is not a quota: no warning colours.
  const level = share ? "share" : ratio >= 1 ? "full" : ratio >= 0.8 ? "high" : "ok";
  return el(
    "span",
    {
      class: `bar bar-${level}`,
      role: "meter",
      "aria-label": label,
      "aria-valuemin": 0,
      "aria-valuemax": limit,
      "aria-valuenow": Math.min(used, limit),
      "aria-valuetext": `${used} of ${limit} tokens`,
    },
    fill,
  );
}
