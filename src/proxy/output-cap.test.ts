import { describe, expect, test } from "bun:test";
import { outputCap, withOutputCap } from "./output-cap.ts";

describe("outputCap", () => {
  test("each dialect's field, the smallest when several are named", () => {
    expect(outputCap("/v1/messages", { max_tokens: 64 })).toEqual({
      named: 64,
      field: "max_tokens",
      answers: 1,
    });
    expect(outputCap("/v1/responses", { max_output_tokens: 9 })?.named).toBe(9);
    expect(
      outputCap("/v1/chat/completions", { max_tokens: 100, max_completion_tokens: 50 }),
    ).toEqual({ named: 50, field: "max_completion_tokens", answers: 1 });
  });

  test("n and best_of multiply; odd values are not caps", () => {
    expect(outputCap("/v1/chat/completions", { max_tokens: 10, n: 4 })?.answers).toBe(4);
    expect(outputCap("/v1/completions", { n: 2, best_of: 5 })?.answers).toBe(5);
    expect(outputCap("/v1/chat/completions", { max_tokens: "10" })?.named).toBeNull();
    expect(outputCap("/v1/chat/completions", { max_tokens: -1 })?.named).toBeNull();
  });

  test("endpoints that generate nothing have no cap", () => {
    expect(outputCap("/v1/embeddings", { input: "x" })).toBeNull();
    expect(outputCap("/v1/messages/count_tokens", { max_tokens: 5 })).toBeNull();
  });
});

describe("withOutputCap", () => {
  test("lowers every named field, leaves the rest of the body as it was", () => {
    const body = {
      model: "m",
      max_tokens: 500,
      max_completion_tokens: 80,
      stream_options: { x: 1 },
    };
    expect(withOutputCap("/v1/chat/completions", body, 100)).toEqual({
      model: "m",
      max_tokens: 100,
      max_completion_tokens: 80,
      stream_options: { x: 1 },
    });
  });

  test("adds the dialect's own field when none is named", () => {
    expect(withOutputCap("/v1/responses", {}, 7)).toEqual({ max_output_tokens: 7 });
    expect(withOutputCap("/v1/chat/completions", {}, 7)).toEqual({ max_tokens: 7 });
  });
});
