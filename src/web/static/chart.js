// A small SVG bar chart of usage points ({start, tokens, requests}, oldest
// first), drawn at the container's own width so text stays readable on a
// phone, and redrawn when that width changes. Colours come from the CSS.

import { formatCompact, formatInt, RANGES } from "./format.js";

const NS = "http://www.w3.org/2000/svg";
const HEIGHT = 200;
const PAD = { top: 12, right: 8, bottom: 24, left: 44 };
const LABEL_SPACING = 72;

const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
// Daily buckets start at midnight UTC, so they are named by their UTC date.
const day = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });

const series = new WeakMap();
const drawnWidth = new WeakMap();
let observer;

/**
 * Draws `usage` ({points, step_seconds}) into `container`. `label` says what
 * the bars are ("Tokens per hour, last 24 hours") for screen readers.
 */
export function drawUsageChart(container, usage, label) {
  series.set(container, { usage, label });
  drawnWidth.delete(container);
  observer ??= new ResizeObserver((entries) => {
    for (const entry of entries) redraw(entry.target);
  });
  observer.observe(container);
  redraw(container);
}

function redraw(container) {
  const data = series.get(container);
  const width = Math.floor(container.clientWidth);
  if (data === undefined || width === 0 || drawnWidth.get(container) === width) return;
  drawnWidth.set(container, width);
  container.replaceChildren(chartSvg(data.usage, data.label, width));
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

/** 1, 2 or 5 times a power of ten, at least `n`. */
function niceCeiling(n) {
  if (n <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 5, 10]) if (m * power >= n) return m * power;
  return 10 * power;
}

function pointLabel(start, stepSeconds) {
  return stepSeconds >= 86_400 ? day.format(start) : timeOfDay.format(start);
}

function chartSvg(usage, label, width) {
  const points = usage.points;
  const step = usage.step_seconds;
  const plotW = Math.max(10, width - PAD.left - PAD.right);
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const peak = points.reduce((best, p) => (p.tokens > best.tokens ? p : best), { tokens: 0 });
  const total = points.reduce((sum, p) => sum + p.tokens, 0);
  const top = niceCeiling(peak.tokens);
  const y = (v) => PAD.top + plotH - (v / top) * plotH;

  const summary =
    total === 0
      ? `${label}: no usage`
      : `${label}: ${formatInt(total)} tokens in all, peak ${formatInt(peak.tokens)} at ${pointLabel(new Date(peak.start), step)}`;
  const root = svg("svg", {
    class: "chart-svg",
    width,
    height: HEIGHT,
    viewBox: `0 0 ${width} ${HEIGHT}`,
    role: "img",
    "aria-label": summary,
  });

  for (const v of [0, top / 2, top]) {
    root.append(
      svg("line", { class: "grid", x1: PAD.left, x2: PAD.left + plotW, y1: y(v), y2: y(v) }),
      svg(
        "text",
        { class: "axis", x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" },
        formatCompact(v),
      ),
    );
  }

  const slot = plotW / Math.max(1, points.length);
  const gap = slot > 4 ? Math.max(1, slot * 0.2) : 0;
  points.forEach((p, i) => {
    if (p.tokens <= 0) return;
    const h = Math.max(1.5, (p.tokens / top) * plotH);
    const start = new Date(p.start);
    const end = new Date(start.getTime() + step * 1000);
    const bar = svg("rect", {
      class: "chart-bar",
      x: (PAD.left + i * slot + gap / 2).toFixed(2),
      y: (PAD.top + plotH - h).toFixed(2),
      width: Math.max(1, slot - gap).toFixed(2),
      height: h.toFixed(2),
      "data-start": p.start,
      "data-tokens": p.tokens,
    });
    bar.append(
      svg(
        "title",
        {},
        `${pointLabel(start, step)}–${pointLabel(end, step)}: ${formatInt(p.tokens)} tokens, ${formatInt(p.requests)} requests`,
      ),
    );
    root.append(bar);
  });

  const every = Math.max(
    1,
    Math.ceil(points.length / Math.max(1, Math.floor(plotW / LABEL_SPACING))),
  );
  for (let i = 0; i < points.length; i += every) {
    const x = PAD.left + i * slot + slot / 2;
    root.append(
      svg(
        "text",
        { class: "axis", x: x.toFixed(2), y: HEIGHT - 6, "text-anchor": "middle" },
        pointLabel(new Date(points[i].start), step),
      ),
    );
  }

  if (total === 0) {
    root.append(
      svg(
        "text",
        {
          class: "empty",
          x: PAD.left + plotW / 2,
          y: PAD.top + plotH / 2,
          "text-anchor": "middle",
        },
        "No usage in this period",
      ),
    );
  }
  return root;
}

/**
 * Fills `container` with one toggle button per usage range; calls
 * `onChange(name)` when another is picked. Returns a getter of the current one.
 */
export function rangeSwitch(container, initial, onChange) {
  let current = initial;
  const buttons = Object.keys(RANGES).map((name) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = name;
    button.setAttribute("aria-label", RANGES[name].label);
    button.setAttribute("aria-pressed", String(name === current));
    button.addEventListener("click", () => {
      if (name === current) return;
      current = name;
      for (const b of buttons) b.setAttribute("aria-pressed", String(b === button));
      onChange(name);
    });
    return button;
  });
  container.append(...buttons);
  return () => current;
}
