/**
 * MODELS_FILE as a user meets it: a key's limit counts weighted units, so an
 * expensive model's requests spend it sooner than a cheap one's; per-kind
 * weights apply to what the upstream reports; /stats shows raw tokens, units
 * and spend per model; a crash-replayed journal charges the same units; a
 * bad file stops `serve` with one clear line.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import {
  E2E_TIMEOUT_MS,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  REPO_ROOT,
  startGateway,
  waitFor,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

const MODELS_YAML = `
currency: USD
models:
  - match: glm-4.7
    prices: { input: 0.6, output: 2.2, cache_read: 0.11 }
  - match: "glm-5*"
    multiplier: 3
  - match: weighted
    weights: { input: 1, output: 4, cache_read: 0.1, cache_write: 1.25 }
`;

interface ModelRow {
  model: string;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  tokens: number;
  units: number;
  requests: number;
  spend: number | null;
  spend_micros: number;
}
type StatsWithModels = {
  total_lifetime_tokens: number;
  current_usage: { tokens_used_in_current_window: number };
  usage_by_model: { currency: string | null; models: ModelRow[] } | null;
};

const dir = mkdtempSync(join(tmpdir(), "tollgate-models-e2e-"));
const modelsFile = join(dir, "models.yaml");
writeFileSync(modelsFile, MODELS_YAML);

/** Requests until the first 429; how many were answered. */
async function admittedUntilRefused(client: OpenAI, model: string): Promise<number> {
  for (let admitted = 0; admitted < 50; admitted++) {
    try {
      await client.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }] });
    } catch (err) {
      expect(err).toBeInstanceOf(OpenAI.RateLimitError);
      return admitted;
    }
  }
  throw new Error("never refused");
}

async function statsOf(gw: GatewayProcess, key: string): Promise<StatsWithModels> {
  return (await gw.stats(key)) as unknown as StatsWithModels;
}

/** /stats once the per-model history holds `requests` requests (it is written by the flush). */
function modelStats(gw: GatewayProcess, key: string, requests: number) {
  return waitFor(
    `per-model history of ${requests} requests`,
    async () => {
      const s = await statsOf(gw, key);
      const n = (s.usage_by_model?.models ?? []).reduce((a, m) => a + m.requests, 0);
      return n >= requests ? s : undefined;
    },
    10_000,
  );
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("model weights and prices (MODELS_FILE)", () => {
  let mock: MockUpstream;
  let gw: GatewayProcess;

  beforeAll(async () => {
    mock = await startMockUpstream();
    gw = await startGateway({
      mock,
      env: { MODELS_FILE: modelsFile, ADMIN_API_KEY: "admin-key-for-model-weights-e2e" },
    });
  }, HOOK_TIMEOUT_MS);

  afterAll(async () => {
    await gw?.close();
    await mock?.stop();
  }, HOOK_TIMEOUT_MS);

  test("the same limit holds fewer requests of an expensive model (OpenAI SDK)", async () => {
    // The mock reports 11 prompt + 5 completion tokens: 16 units on glm-4.7,
    // 48 on glm-5.1 (multiplier 3). A request is admitted while usage < 100.
    const cheap = await gw.createKey({ name: "cheap", limit: 100 });
    const dear = await gw.createKey({ name: "dear", limit: 100 });
    const cheapAdmitted = await admittedUntilRefused(
      gw.openai(cheap.key, { maxRetries: 0 }),
      "glm-4.7",
    );
    const dearAdmitted = await admittedUntilRefused(
      gw.openai(dear.key, { maxRetries: 0 }),
      "glm-5.1",
    );
    expect(cheapAdmitted).toBe(7); // 7 × 16 = 112
    expect(dearAdmitted).toBe(3); // 3 × 48 = 144

    // The last request admitted near the limit may be forwarded with its
    // output capped to what remains, so its output is read from the stats.
    const c = await modelStats(gw, cheap.key, 7);
    const [row] = c.usage_by_model?.models ?? [];
    expect(c.usage_by_model?.currency).toBe("USD");
    expect(row).toMatchObject({
      model: "glm-4.7",
      input_tokens: 77,
      cache_read_tokens: 0,
      cache_write_tokens: 0,
      requests: 7,
    });
    const lastOutput = (row?.output_tokens ?? 0) - 6 * 5;
    expect(lastOutput).toBeGreaterThanOrEqual(0);
    expect(row?.tokens).toBe(77 + 30 + lastOutput);
    // Weight 1: units are the raw tokens, and the window counts them.
    expect(row?.units).toBe(row?.tokens);
    expect(c.current_usage.tokens_used_in_current_window).toBe(row?.units ?? -1);
    // Per request 11 × 0.6 + 5 × 2.2 = 17.6 micro-dollars, rounded up to 18.
    const lastSpend = Math.ceil((11 * 600_000 + lastOutput * 2_200_000) / 1_000_000);
    expect(row?.spend_micros).toBe(6 * 18 + lastSpend);
    expect(row?.spend).toBeCloseTo((6 * 18 + lastSpend) / 1e6, 12);

    const d = await modelStats(gw, dear.key, 3);
    const [dearRow] = d.usage_by_model?.models ?? [];
    expect(dearRow).toMatchObject({ model: "glm-5.1", requests: 3, spend_micros: 0 });
    // Admission prices the input estimate and the cap at 3x too, so after the
    // first request the others go with their output capped to what the units
    // allow; each still reports its 11 prompt tokens.
    expect(dearRow?.tokens).toBeGreaterThanOrEqual(16 + 2 * 11);
    expect(dearRow?.tokens).toBeLessThan(3 * 16);
    // Multiplier 3 on every kind: three units a token.
    expect(dearRow?.units).toBe(3 * (dearRow?.tokens ?? 0));
    expect(d.current_usage.tokens_used_in_current_window).toBe(dearRow?.units ?? -1);
    expect(d.total_lifetime_tokens).toBe(dearRow?.units ?? -1);
  });

  test("per-kind weights apply to Anthropic's input, cache and output counts, whole and streamed", async () => {
    const k = await gw.createKey({ name: "kinds", limit: 100_000 });
    const client = gw.anthropic(k.key, { maxRetries: 0 });
    const message = {
      model: "weighted",
      max_tokens: 64,
      messages: [{ role: "user" as const, content: "hi" }],
    };
    const whole = await client.messages.create(message);
    expect(whole.usage).toMatchObject({
      input_tokens: 11,
      output_tokens: 5,
      cache_creation_input_tokens: 3,
      cache_read_input_tokens: 2,
    });
    const stream = await client.messages.create({ ...message, stream: true });
    for await (const _ of stream) {
      // read to the end
    }
    // 11 + 5 × 4 + 2 × 0.1 + 3 × 1.25 = 34.95, rounded up: 35 units a request.
    const s = await modelStats(gw, k.key, 2);
    expect(s.current_usage.tokens_used_in_current_window).toBe(70);
    expect(s.usage_by_model).toEqual({
      currency: "USD",
      models: [
        {
          model: "weighted",
          input_tokens: 22,
          output_tokens: 10,
          cache_read_tokens: 4,
          cache_write_tokens: 6,
          tokens: 42,
          units: 70,
          requests: 2,
          spend: 0,
          spend_micros: 0,
        },
      ],
    });
    // The admin API carries the same: per key, and summed per model across keys.
    const perKey = await gw.admin<{ by_model: unknown }>("GET", `/admin/keys/${k.id}/usage`);
    expect(perKey.status).toBe(200);
    expect(perKey.body.by_model).toEqual(s.usage_by_model);
    const all = await gw.admin<{ by_model: { currency: string; models: ModelRow[] } }>(
      "GET",
      "/admin/usage",
    );
    expect(all.body.by_model.currency).toBe("USD");
    expect(all.body.by_model.models.find((m: ModelRow) => m.model === "weighted")).toMatchObject({
      units: 70,
      tokens: 42,
    });
  });
});

describe("a crash-replayed journal charges the same units", () => {
  test("usage survives SIGKILL before any flush, with its units and per-model detail", async () => {
    const mock = await startMockUpstream();
    // No flush for ten minutes: the charges live only in the journal.
    const gw = await startGateway({
      mock,
      env: { MODELS_FILE: modelsFile, FLUSH_INTERVAL_MS: "600000" },
    });
    try {
      const k = await gw.createKey({ name: "replay", limit: 100_000 });
      const client = gw.openai(k.key, { maxRetries: 0 });
      await client.chat.completions.create({
        model: "glm-5",
        messages: [{ role: "user", content: "hi" }],
      });
      await client.chat.completions
        .create({
          model: "glm-4.7",
          messages: [{ role: "user", content: "hi" }],
          stream: true,
        })
        .then(async (s) => {
          for await (const _ of s) {
            // read to the end
          }
        });
      const before = await statsOf(gw, k.key);
      expect(before.current_usage.tokens_used_in_current_window).toBe(48 + 16);
      await gw.kill();
      await gw.start();
      const after = await modelStats(gw, k.key, 2);
      expect(after.current_usage.tokens_used_in_current_window).toBe(64);
      expect(after.total_lifetime_tokens).toBe(64);
      expect(
        after.usage_by_model?.models.map((m) => [m.model, m.tokens, m.units, m.spend_micros]),
      ).toEqual([
        ["glm-4.7", 16, 16, 18],
        ["glm-5", 16, 48, 0],
      ]);
    } finally {
      await gw.close();
      await mock.stop();
    }
  });
});

describe("a bad MODELS_FILE", () => {
  test("stops `serve` with one line naming the file and the field, exit code 1, nothing created", async () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(
      bad,
      'models:\n  - match: glm-5.1\n    peak: { hours: "14:00-18:00", time_zone: Asia/Shangai, multiplier: 3 }\n',
    );
    const dbDir = join(dir, "never-created");
    const proc = Bun.spawn([process.execPath, "src/cli/main.ts", "serve"], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        MODELS_FILE: bad,
        DATABASE_PATH: join(dbDir, "t.db"),
        PORT: "0",
      },
      stdout: "pipe",
      stderr: "pipe",
      timeout: 30_000,
    });
    const [out, err, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    expect(code).not.toBe(0);
    const said = `${out}${err}`.trim();
    expect(said.split("\n")).toHaveLength(1);
    expect(said).toContain(
      `MODELS_FILE ${bad}: models[0].peak.time_zone: is not a known IANA time zone`,
    );
    expect(said).not.toContain("    at ");
    expect(await Bun.file(join(dbDir, "t.db")).exists()).toBe(false);
  });
});
