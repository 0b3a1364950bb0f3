import { describe, expect, test } from "bun:test";
import { ModelTable } from "./cost.ts";
import { parseModelsFile } from "./load.ts";
import { estimatedUsage, type TokenUsage } from "./token-usage.ts";

const usage = (input: number, output: number, cacheRead = 0, cacheWrite = 0): TokenUsage => ({
  input,
  output,
  cacheRead,
  cacheWrite,
});
const table = (yaml: string) => parseModelsFile("models.yaml", yaml);
const OFF_PEAK = Date.parse("2026-12-06T02:00:00Z"); // 10:00 in Shanghai
const PEAK = Date.parse("2026-12-06T07:00:00Z"); // 15:00 in Shanghai

describe("model cost", () => {
  test("without a file every token is one unit and nothing is spent", () => {
    expect(ModelTable.flat.cost("glm-4.7", usage(120, 30, 7, 5), OFF_PEAK)).toEqual({
      units: 162,
      spendMicros: 0,
    });
    expect(ModelTable.flat.priced).toBe(false);
  });

  test("per-kind weights times the model's multiplier", () => {
    const t = table(`
models:
  - match: big
    multiplier: 2
    weights: { input: 1, output: 4, cache_read: 0.1, cache_write: 1.25 }
`);
    // 2 × (100 + 4×10 + 0.1×50 + 1.25×8) = 2 × 155 = 310
    expect(t.cost("big", usage(100, 10, 50, 8), OFF_PEAK).units).toBe(310);
  });

  test("names match without regard to case: a key cannot escape a rule by writing GLM-5", () => {
    const t = table(
      'models:\n  - match: "glm-5*"\n    multiplier: 3\n  - match: GLM-4.7\n    multiplier: 2\n',
    );
    const u = usage(100, 10);
    expect(t.cost("glm-5", u, OFF_PEAK).units).toBe(330);
    expect(t.cost("GLM-5", u, OFF_PEAK).units).toBe(330);
    expect(t.cost("Glm-5.1", u, OFF_PEAK).units).toBe(330);
    expect(t.cost("glm-4.7", u, OFF_PEAK).units).toBe(220);
    expect(t.cost("glm-4.6", u, OFF_PEAK).units).toBe(110);
  });

  test("admission weights: the dearest input kind and the output weight, peak or not", () => {
    const t = table(`
models:
  - match: big
    multiplier: 2
    weights: { input: 1, output: 4, cache_read: 0.1, cache_write: 1.25 }
    peak: { hours: "14:00-18:00", time_zone: Asia/Shanghai, multiplier: 3 }
`);
    expect(t.weights("big", OFF_PEAK)).toEqual({ input: 2.5, output: 8 });
    expect(t.weights("big", PEAK)).toEqual({ input: 3.75, output: 12 });
    expect(t.weights("other", OFF_PEAK)).toEqual({ input: 1, output: 1 });
    expect(ModelTable.flat.weights("big", OFF_PEAK)).toEqual({ input: 1, output: 1 });
  });

  test("units round up per request, without float drift", () => {
    const t = table("models:\n  - match: m\n    weights: { input: 0.1, output: 0.1 }\n");
    // 0.1 × 3 would be 0.30000000000000004 in floating point; integers give 1.
    expect(t.cost("m", usage(3, 0), OFF_PEAK).units).toBe(1);
    expect(t.cost("m", usage(10, 0), OFF_PEAK).units).toBe(1);
    expect(t.cost("m", usage(11, 0), OFF_PEAK).units).toBe(2);
    expect(t.cost("m", usage(0, 0), OFF_PEAK).units).toBe(0);
  });

  test("the first matching rule wins; exact names and globs; unmatched models weigh 1", () => {
    const t = table(`
models:
  - match: glm-4.5-air
    multiplier: 0.5
  - match: "glm-4.5*"
    multiplier: 2
  - match: [glm-5, "glm-5.*"]
    multiplier: 3
`);
    expect(t.cost("glm-4.5-air", usage(100, 0), OFF_PEAK).units).toBe(50);
    expect(t.cost("glm-4.5", usage(100, 0), OFF_PEAK).units).toBe(200);
    expect(t.cost("glm-5.1", usage(100, 0), OFF_PEAK).units).toBe(300);
    expect(t.cost("glm-5", usage(100, 0), OFF_PEAK).units).toBe(300);
    expect(t.cost("glm-4.7", usage(100, 0), OFF_PEAK).units).toBe(100);
    expect(t.cost(undefined, usage(100, 0), OFF_PEAK).units).toBe(100);
  });

  test("a peak multiplier replaces the model's multiplier during its hours", () => {
    const t = table(`
models:
  - match: glm-5.1
    multiplier: 2
    weights: { output: 2 }
    peak: { hours: "14:00-18:00", time_zone: Asia/Shanghai, multiplier: 3 }
`);
    expect(t.cost("glm-5.1", usage(100, 10), OFF_PEAK).units).toBe(240);
    expect(t.cost("glm-5.1", usage(100, 10), PEAK).units).toBe(360);
  });

  test("spend: price per million tokens per kind, in micro-units, rounded up", () => {
    const t = table(`
currency: EUR
models:
  - match: glm-4.7
    prices: { input: 0.6, output: 2.2, cache_read: 0.11 }
    peak: { hours: "14:00-18:00", time_zone: Asia/Shanghai, multiplier: 3 }
`);
    expect(t.currency).toBe("EUR");
    expect(t.priced).toBe(true);
    // 1000×0.6 + 500×2.2 + 2000×0.11 = 600 + 1100 + 220 micro-euros
    expect(t.cost("glm-4.7", usage(1000, 500, 2000), OFF_PEAK).spendMicros).toBe(1920);
    // Prices are money: peak multipliers change units, not spend.
    expect(t.cost("glm-4.7", usage(1000, 500, 2000), PEAK).spendMicros).toBe(1920);
    // One token at 0.6 per million is 0.6 micro-euros: rounded up to 1.
    expect(t.cost("glm-4.7", usage(1, 0), OFF_PEAK).spendMicros).toBe(1);
    // A model without prices spends nothing.
    expect(t.cost("other", usage(1000, 0), OFF_PEAK).spendMicros).toBe(0);
  });

  test("large counts stay exact", () => {
    const t = table("models:\n  - match: m\n    prices: { output: 999.999999 }\n");
    expect(t.cost("m", usage(0, 9_000_000), OFF_PEAK).spendMicros).toBe(8_999_999_991);
  });

  test("an estimate counts as output tokens", () => {
    const t = table("models:\n  - match: m\n    weights: { input: 1, output: 5 }\n");
    expect(t.cost("m", estimatedUsage(10), OFF_PEAK).units).toBe(50);
  });
});
