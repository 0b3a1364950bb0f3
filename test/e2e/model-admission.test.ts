/**
 * Admission counts what the charge will count. With MODELS_FILE a key's
 * limit is in weighted units, so the reservation of a request (its input
 * estimate and its output cap) is weighted too: a cap that fits in tokens
 * but not in the model's units is refused (or lowered), where it would
 * otherwise run up to three times past what remains.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import {
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  startGateway,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

const dir = mkdtempSync(join(tmpdir(), "tollgate-model-admission-"));
const modelsFile = join(dir, "models.yaml");
writeFileSync(modelsFile, 'models:\n  - match: "glm-5*"\n    multiplier: 3\n');

describe("admission in weighted units", () => {
  let mock: MockUpstream;
  let gw: GatewayProcess;
  let clamped: GatewayProcess;

  beforeAll(async () => {
    mock = await startMockUpstream();
    gw = await startGateway({ mock, env: { MODELS_FILE: modelsFile } });
    clamped = await startGateway({
      mock,
      env: { MODELS_FILE: modelsFile, OUTPUT_CAP_POLICY: "clamp" },
    });
  }, HOOK_TIMEOUT_MS);
  afterAll(async () => {
    await gw?.close();
    await clamped?.close();
    await mock?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, HOOK_TIMEOUT_MS);

  const ask = (g: GatewayProcess, key: string, model: string, max_tokens: number) =>
    g
      .openai(key, { maxRetries: 0 })
      .chat.completions.create({ model, max_tokens, messages: [{ role: "user", content: "hi" }] });

  test("a cap that fits in tokens but not in the model's units is refused; a cheap model's is not", async () => {
    const k = await gw.createKey({ name: "weighted-cap", limit: 300 });
    // About 20 input tokens and a cap of 90: 110 tokens, 330 units at 3x.
    const err = await ask(gw, k.key, "glm-5", 90).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(String((err as Error).message)).toContain("300");
    const before = mock.requestCount;
    await ask(gw, k.key, "glm-4.7", 90);
    expect(mock.requestCount - before).toBe(1);
  });

  test("with OUTPUT_CAP_POLICY=clamp the cap is lowered to what the units allow", async () => {
    const k = await clamped.createKey({ name: "weighted-clamp", limit: 300 });
    await ask(clamped, k.key, "glm-5", 90);
    const sent = mock.requests.at(-1)?.body as { max_tokens?: number } | undefined;
    expect(sent?.max_tokens).toBeLessThan(90);
    expect(sent?.max_tokens).toBeGreaterThan(0);
    // What was forwarded fits: its input estimate and cap, at 3x, within 300 units.
    const used = (await clamped.stats(k.key)).current_usage.tokens_used_in_current_window;
    expect(used).toBeLessThanOrEqual(300);
  });

  test("the secret sweep: the logs are non-empty and hold no key", () => {
    expect(expectNoSecretsInLogs()).toBeGreaterThanOrEqual(2);
  });
});
