/**
 * Model names come from key holders, and the per-model history and the
 * weights key on them. A name can be any length and any case; neither may
 * stop usage from reaching the database, nor let a key escape its model's
 * weight. Run on PostgreSQL (an index row holds at most 8 kB) with a second
 * instance reading what the first one flushed.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  startGateway,
  waitFor,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";
import { type TestDatabase, testPostgres } from "../harness/postgres.ts";
import { describeNeedingPostgres, NEEDS_SERVER } from "../harness/require-postgres.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

const pg = await testPostgres();
const dir = mkdtempSync(join(tmpdir(), "tollgate-model-names-"));
const modelsFile = join(dir, "models.yaml");
writeFileSync(modelsFile, 'models:\n  - match: "glm-5*"\n    multiplier: 3\n');

type Stats = {
  total_lifetime_tokens: number;
  current_usage: { tokens_used_in_current_window: number };
  usage_by_model: { models: { model: string; tokens: number; units: number }[] } | null;
};

describeNeedingPostgres("model names from clients", pg.shared ? undefined : NEEDS_SERVER, () => {
  let mock: MockUpstream;
  let db: TestDatabase;
  let a: GatewayProcess;
  let b: GatewayProcess;

  beforeAll(async () => {
    mock = await startMockUpstream({ record: false });
    db = await pg.create();
    const env = { DATABASE_URL: db.url, MODELS_FILE: modelsFile };
    a = await startGateway({ mock, env });
    b = await startGateway({ mock, env });
  }, HOOK_TIMEOUT_MS);
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
    await mock?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, HOOK_TIMEOUT_MS);

  const chat = (key: string, model: string) =>
    a.openai(key, { maxRetries: 0 }).chat.completions.create({
      model,
      messages: [{ role: "user", content: "hi" }],
    });

  test("a 9 kB model name is charged, and usage after it still reaches the database", async () => {
    const k = await a.createKey({ name: "long-name", limit: 1_000_000 });
    // Random, so PostgreSQL cannot compress it under its index row limit.
    // Not "glm-…": a random name must not happen to match the glm-5* rule.
    const long = `x-${Buffer.from(crypto.getRandomValues(new Uint8Array(4500))).toString("hex")}`;
    const first = await chat(k.key, long);
    const second = await chat(k.key, "glm-4.7");
    const total = (first.usage?.total_tokens ?? 0) + (second.usage?.total_tokens ?? 0);
    expect(total).toBeGreaterThan(0);
    // The other instance sees only what was flushed to the database.
    const seen = await waitFor(
      "both requests flushed",
      async () => {
        const s = (await b.stats(k.key)) as unknown as Stats;
        const rows = s.usage_by_model?.models.length ?? 0;
        return s.total_lifetime_tokens >= total && rows >= 2 ? s : undefined;
      },
      20_000,
    );
    expect(seen.total_lifetime_tokens).toBe(total);
    const names = (seen.usage_by_model?.models ?? []).map((m) => m.model).sort();
    expect(names).toEqual(["(name over 128 characters)", "glm-4.7"]);
  });

  test("changing a name's case does not escape its weight", async () => {
    const lower = await a.createKey({ name: "lower", limit: 1_000_000 });
    const upper = await a.createKey({ name: "upper", limit: 1_000_000 });
    const r1 = await chat(lower.key, "glm-5");
    const r2 = await chat(upper.key, "GLM-5");
    expect(r2.usage?.total_tokens).toBe(r1.usage?.total_tokens);
    // The units charged, once flushed: the database's totals, read by the other instance.
    const units = (key: string) =>
      waitFor(
        "the charge flushed",
        async () => {
          const t = ((await b.stats(key)) as unknown as Stats).total_lifetime_tokens;
          return t > 0 ? t : undefined;
        },
        20_000,
      );
    expect(await units(lower.key)).toBe(3 * (r1.usage?.total_tokens ?? 0));
    expect(await units(upper.key)).toBe(3 * (r2.usage?.total_tokens ?? 0));
  });

  test("the secret sweep: both gateways' logs are non-empty and hold no key", () => {
    expect(expectNoSecretsInLogs()).toBeGreaterThanOrEqual(2);
  });
});
