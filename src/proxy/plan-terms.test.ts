import { describe, expect, test } from "bun:test";
import { codingPlanEndpoint, sharedPlanNotice } from "./plan-terms.ts";

const ZAI_CODING = "https://api.z.ai/api/coding/paas/v4";
const ZAI_PAYG = "https://api.z.ai/api/paas/v4";
const ZAI_ANTHROPIC = "https://api.z.ai/api/anthropic";

describe("codingPlanEndpoint", () => {
  test.each([
    ["Z.AI coding plan", [ZAI_CODING, ZAI_ANTHROPIC], ZAI_CODING],
    [
      "Kimi coding plan",
      ["https://api.kimi.com/coding/v1", ZAI_ANTHROPIC],
      "https://api.kimi.com/coding/v1",
    ],
    ["Z.AI pay-as-you-go", [ZAI_PAYG, ZAI_ANTHROPIC], undefined],
    ["a word that only contains coding", ["https://example.com/decoding/v1"], undefined],
    ["a host named coding is not a path", ["https://coding.example.com/v1"], undefined],
    ["not a URL", ["::"], undefined],
  ] as const)("%s", (_name, urls, expected) => {
    expect(codingPlanEndpoint(urls)).toBe(expected);
  });
});

describe("sharedPlanNotice", () => {
  test("a coding-plan endpoint with more than one active key: one line pointing to the docs", () => {
    const line = sharedPlanNotice([ZAI_CODING, ZAI_ANTHROPIC], 3);
    expect(line).toContain(ZAI_CODING);
    expect(line).toContain("3 keys are active");
    expect(line).toContain("docs/quotas.md#upstream-accounts");
    expect(line).not.toContain("\n");
  });

  test.each([
    ["one key on a coding plan", [ZAI_CODING], 1],
    ["no key yet", [ZAI_CODING], 0],
    ["many keys on pay-as-you-go", [ZAI_PAYG, ZAI_ANTHROPIC], 20],
  ] as const)("no notice: %s", (_name, urls, keys) => {
    expect(sharedPlanNotice(urls, keys)).toBeUndefined();
  });
});
