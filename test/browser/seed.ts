/** Setting up keys and usage for the browser tests through the real gateway. */

import { Database } from "bun:sqlite";
import { type GatewayProcess, mockHeaders } from "../harness/gateway.ts";

export const ADMIN_KEY = "admin-browser-tests-0123456789abcdef";

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  token_limit_per_5h: number;
  status: string;
  /** Only in the answers to create and rotate. */
  key?: string;
}

/** An admin API call with the admin key as a Bearer token; throws unless 2xx. */
export async function admin<T>(
  gw: GatewayProcess,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const res = await gw.fetch(path, {
    method,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

export async function createKey(
  gw: GatewayProcess,
  fields: { name: string; token_limit_per_5h: number; model?: string; expires_at?: string | null },
): Promise<ApiKey & { key: string }> {
  const created = await admin<ApiKey & { key: string }>(gw, "POST", "/admin/keys", fields);
  gw.secrets.push(created.key);
  return created;
}

/**
 * One chat completion through the proxy with the official SDK, for which the
 * mock upstream reports `tokens` tokens in all (at least 2).
 */
export async function spend(gw: GatewayProcess, secret: string, tokens: number): Promise<void> {
  const completion = Math.max(1, Math.min(20, tokens - 1));
  await gw
    .openai(secret)
    .chat.completions.create(
      { model: "glm-4.7", messages: [{ role: "user", content: "Hello" }] },
      { headers: mockHeaders({ promptTokens: tokens - completion, completionTokens: completion }) },
    );
}

/** What the official SDK throws for one chat request with `secret` (undefined when it is answered). */
export function chatError(gw: GatewayProcess, secret: string): Promise<unknown> {
  return gw
    .openai(secret, { maxRetries: 0 })
    .chat.completions.create({ model: "glm-4.7", messages: [{ role: "user", content: "Hi" }] })
    .then(
      () => undefined,
      (e: unknown) => e,
    );
}

const FIVE_MINUTES = 300_000;

/**
 * Past usage for the screenshots' charts. The proxy can only charge the
 * present, so a month of history is written straight into the gateway's
 * SQLite file as the ledger would have: 5-minute buckets plus the key's
 * lifetime totals (schema: migrations/sqlite). A working-hours shape with a
 * fixed pseudo-random spread, so pictures are stable from run to run.
 */
export function seedHistory(
  gw: GatewayProcess,
  keyId: string,
  perHour: number,
  seed: number,
  until = Date.now(),
): void {
  const db = new Database(gw.dbPath);
  db.run("PRAGMA busy_timeout = 5000");
  let state = seed;
  const random = () => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return state / 2_147_483_648;
  };
  const now = Date.now();
  const start = Math.floor((now - 30 * 86_400_000) / FIVE_MINUTES) * FIVE_MINUTES;
  const insert = db.prepare(
    "INSERT INTO usage_buckets (key_id, bucket_start, tokens, requests) VALUES (?, ?, ?, ?) " +
      "ON CONFLICT (key_id, bucket_start) DO UPDATE SET tokens = tokens + excluded.tokens, requests = requests + excluded.requests",
  );
  let tokens = 0;
  let requests = 0;
  db.transaction(() => {
    // Hourly before the last 6 hours, every 5 minutes within them; none in the current bucket.
    const end = Math.min(until, now - FIVE_MINUTES);
    for (let t = start; t < end; t += now - t > 6 * 3_600_000 ? 3_600_000 : FIVE_MINUTES) {
      const hour = new Date(t).getUTCHours();
      const working = hour >= 8 && hour <= 19 ? 1 : 0.15;
      const share = now - t > 6 * 3_600_000 ? 1 : 1 / 12;
      const n = Math.round(perHour * share * working * (0.3 + random() * 1.4));
      if (n === 0 || random() < 0.2) continue;
      const r = Math.max(1, Math.round(n / 1500));
      insert.run(keyId, t, n, r);
      tokens += n;
      requests += r;
    }
    db.run(
      "UPDATE api_keys SET total_tokens = total_tokens + ?, total_requests = total_requests + ? WHERE id = ?",
      [tokens, requests, keyId],
    );
  })();
  db.close();
}
