import { describe, expect, test } from "bun:test";
import {
  addModelAmounts,
  type ModelAmounts,
  NO_MODEL_AMOUNTS,
  sumPerModel,
} from "./model-amounts.ts";

const amounts = (n: number): ModelAmounts => ({
  input: n,
  output: 2 * n,
  cacheRead: 3 * n,
  cacheWrite: 4 * n,
  units: 5 * n,
  requests: 1,
  spendMicros: 7 * n,
});

describe("model amounts", () => {
  test("adding adds every amount and leaves the added row alone", () => {
    const sum = { ...NO_MODEL_AMOUNTS };
    const one = amounts(1);
    addModelAmounts(sum, one);
    addModelAmounts(sum, amounts(10));
    expect(sum).toEqual({ ...amounts(11), requests: 2 });
    expect(one).toEqual(amounts(1));
    expect(NO_MODEL_AMOUNTS.input).toBe(0);
  });

  test("sums per model, under the key given, ordered by model name", () => {
    const rows = [
      { keyId: "a", model: "glm-4.7", ...amounts(1) },
      { keyId: "b", model: "glm-4.5", ...amounts(2) },
      { keyId: "c", model: "glm-4.7", ...amounts(3) },
    ];
    expect(sumPerModel(rows, "")).toEqual([
      { keyId: "", model: "glm-4.5", ...amounts(2) },
      { keyId: "", model: "glm-4.7", ...amounts(4), requests: 2 },
    ]);
    expect(sumPerModel([], "k")).toEqual([]);
  });
});
