import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ModelTable } from "./cost.ts";
import { loadModelTable, ModelsFileError, parseModelsFile } from "./load.ts";

const dir = mkdtempSync(join(tmpdir(), "models-file-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const problem = (path: string, text: string): string => {
  try {
    parseModelsFile(path, text);
  } catch (err) {
    expect(err).toBeInstanceOf(ModelsFileError);
    return (err as Error).message;
  }
  throw new Error("expected the file to be refused");
};

describe("MODELS_FILE", () => {
  test("unset: the flat table", () => {
    expect(loadModelTable(undefined)).toBe(ModelTable.flat);
  });

  test("YAML and JSON files are read", () => {
    const yaml = join(dir, "m.yaml");
    writeFileSync(yaml, "models:\n  - match: a\n    multiplier: 2\n");
    const json = join(dir, "m.json");
    writeFileSync(json, JSON.stringify({ models: [{ match: "a", multiplier: 3 }] }));
    const u = { input: 10, output: 0, cacheRead: 0, cacheWrite: 0 };
    expect(loadModelTable(yaml).cost("a", u, 0).units).toBe(20);
    expect(loadModelTable(json).cost("a", u, 0).units).toBe(30);
  });

  test("the shipped examples are valid", () => {
    const coding = loadModelTable(
      join(import.meta.dir, "../../examples/models.glm-coding-plan.yaml"),
    );
    const u = { input: 100, output: 0, cacheRead: 0, cacheWrite: 0 };
    const peak = Date.parse("2026-12-06T07:00:00Z"); // 15:00 in Beijing
    const offPeak = Date.parse("2026-12-06T02:00:00Z"); // 10:00 in Beijing
    expect(coding.cost("glm-4.7", u, peak).units).toBe(100);
    expect(coding.cost("glm-5", u, peak).units).toBe(300);
    expect(coding.cost("glm-5.1", u, peak).units).toBe(300);
    expect(coding.cost("glm-5.1", u, offPeak).units).toBe(200);
    expect(coding.priced).toBe(false);
    const payg = loadModelTable(join(import.meta.dir, "../../examples/models.pay-as-you-go.yaml"));
    expect(payg.priced).toBe(true);
    expect(payg.cost("glm-4.7", { ...u, output: 1_000_000, input: 0 }, peak).spendMicros).toBe(
      2_200_000,
    );
  });

  test("a missing file is named", () => {
    expect(() => loadModelTable(join(dir, "nope.yaml"))).toThrow(
      `MODELS_FILE ${join(dir, "nope.yaml")}: cannot be read (no such file)`,
    );
  });

  test.each([
    ["models: [\n", "m.yaml: cannot be parsed"],
    ["{", "m.json: cannot be parsed"],
    ["models: 3\n", "m.yaml: models: must be a list of models"],
    ["models:\n  - multiplier: 2\n", "models[0].match:"],
    ["models:\n  - match: a\n    multiplier: -1\n", "models[0].multiplier: must be 0 or more"],
    ["models:\n  - match: a\n    multiplier: 0\n", "models[0].multiplier: must be more than 0"],
    ["models:\n  - match: a\n    weigths: {}\n", 'models[0]: Unrecognized key: "weigths"'],
    [
      "models:\n  - match: a\n    weights: { output: x }\n",
      "models[0].weights.output: must be a number",
    ],
    [
      'models:\n  - match: a\n    peak: { hours: "2pm-6pm", time_zone: UTC, multiplier: 3 }\n',
      'models[0].peak.hours: must look like "14:00-18:00"',
    ],
    [
      'models:\n  - match: a\n    peak: { hours: "22:00-24:30", time_zone: UTC, multiplier: 3 }\n',
      'models[0].peak.hours: must look like "14:00-18:00"',
    ],
    [
      'models:\n  - match: a\n    peak: { hours: "14:00-18:00", time_zone: Mars/Olympus, multiplier: 3 }\n',
      "models[0].peak.time_zone: is not a known IANA time zone",
    ],
    ["currency: dollars\nmodels: []\n", "currency: must be a three-letter currency code"],
    [
      "models:\n  - match: a\n    prices: { input: -1 }\n",
      "models[0].prices.input: must be 0 or more",
    ],
  ])("%j is refused with one line naming the field", (text, expected) => {
    const name = text === "{" ? "m.json" : "m.yaml";
    const message = problem(name, text);
    expect(message).toContain(`MODELS_FILE ${name}: `);
    expect(message).toContain(expected.replace(/^m\.(yaml|json): /, ""));
    expect(message).not.toContain("\n");
  });
});
