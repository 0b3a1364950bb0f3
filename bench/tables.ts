/** Plain-text and markdown tables, shared by every part of the report. */

export function textTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join("  ");
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** Numbers read best right-aligned; `numeric: false` keeps every column left. */
export function mdTable(head: string[], rows: string[][], numeric = true): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const align = head.map((_, i) => (i === 0 || !numeric ? "---" : "---:"));
  return [line(head), line(align), ...rows.map(line)].join("\n");
}
