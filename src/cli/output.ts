import type { KeyObject } from "../admin/schemas.ts";
import { maskedKey } from "../keys/secret.ts";

/** Every `--json` output names its fields in snake_case, as the admin API does. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(snakeCaseKeys(value), null, 2)}\n`);
}

/** `lifetimeTokens` -> `lifetime_tokens`, in every object at any depth; values untouched. */
export function snakeCaseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeCaseKeys);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [
      k.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase(),
      snakeCaseKeys(v),
    ]),
  );
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

/** A key as people read it; built from the same object `--json` prints. */
export function describeKey(k: KeyObject): string {
  const n = (v: number) => v.toLocaleString("en-US");
  const lines = [
    ["id", k.id],
    ["name", k.name],
    ["key", maskedKey(k.prefix)],
    ["status", k.status],
    ["limit", `${n(k.token_limit_per_5h)} tokens per 5 hours`],
    [
      "used (5h)",
      `${n(k.usage.tokens_used_in_current_window)}, ${n(k.usage.remaining_tokens)} left` +
        (k.usage.window_resets_at ? `; the oldest frees up at ${k.usage.window_resets_at}` : ""),
    ],
    [
      "weekly",
      k.token_limit_per_week === null || !k.weekly_usage
        ? "(no weekly limit)"
        : `${n(k.token_limit_per_week)} tokens per 7 days; ${n(k.weekly_usage.tokens_used_in_current_window)} used, ${n(k.weekly_usage.remaining_tokens)} left` +
          (k.weekly_usage.window_resets_at
            ? `; the oldest frees up at ${k.weekly_usage.window_resets_at}`
            : ""),
    ],
    ["model", k.model ?? "(request's model, else the default)"],
    ["models", k.allowed_models === null ? "(any)" : k.allowed_models.join(", ")],
    ["expires", k.expires_at ?? "never"],
    [
      "in flight",
      k.max_concurrent === null
        ? "(the gateway default)"
        : `at most ${n(k.max_concurrent)} requests at once`,
    ],
    ["created", k.created_at],
    ["last used", k.last_used ?? "never"],
    ["lifetime", `${n(k.total_lifetime_tokens)} tokens, ${n(k.total_requests)} requests`],
  ];
  return lines.map(([a, b]) => `  ${(a ?? "").padEnd(10)} ${b}`).join("\n");
}
