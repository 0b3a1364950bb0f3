import { maskedKey } from "../keys/secret.ts";
import type { KeyRecord } from "../storage/types.ts";

/** What the CLI and scripts see of a key (never its hash). */
export function keyJson(k: KeyRecord, extra: Record<string, unknown> = {}) {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    id: k.id,
    name: k.name,
    prefix: k.keyPrefix,
    token_limit_per_5h: k.tokenLimit,
    model: k.model,
    expires_at: iso(k.expiresAt),
    disabled: k.disabled,
    created_at: iso(k.createdAt),
    last_used: iso(k.lastUsedAt),
    total_lifetime_tokens: k.totalTokens,
    total_requests: k.totalRequests,
    ...extra,
  };
}

export function keyStatus(k: KeyRecord, now: number): "active" | "expired" | "disabled" {
  if (k.disabled) return "disabled";
  if (k.expiresAt !== null && k.expiresAt <= now) return "expired";
  return "active";
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A plain aligned table; no colours, so it pipes and greps cleanly. */
export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  process.stdout.write(`${[line(header), ...rows.map(line)].join("\n")}\n`);
}

export function describeKey(k: KeyRecord, now: number, windowUsed?: number): string {
  const lines = [
    ["id", k.id],
    ["name", k.name],
    ["key", maskedKey(k.keyPrefix)],
    ["status", keyStatus(k, now)],
    ["limit", `${k.tokenLimit.toLocaleString("en-US")} tokens per 5 hours`],
    ...(windowUsed === undefined ? [] : [["used (5h)", windowUsed.toLocaleString("en-US")]]),
    ["model", k.model ?? "(request's model, else the default)"],
    ["expires", k.expiresAt === null ? "never" : new Date(k.expiresAt).toISOString()],
    ["created", new Date(k.createdAt).toISOString()],
    ["last used", k.lastUsedAt === null ? "never" : new Date(k.lastUsedAt).toISOString()],
    [
      "lifetime",
      `${k.totalTokens.toLocaleString("en-US")} tokens, ${k.totalRequests.toLocaleString("en-US")} requests`,
    ],
  ];
  return lines.map(([a, b]) => `  ${(a ?? "").padEnd(10)} ${b}`).join("\n");
}
