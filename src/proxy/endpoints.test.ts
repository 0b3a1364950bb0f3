import { describe, expect, test } from "bun:test";
import { checkExtraPath, checkPath, deferredWork } from "./endpoints.ts";

const none = new Set<string>();

describe("checkPath", () => {
  const table: Array<[string, string, "ok" | "malformed" | "not_found" | "method"]> = [
    ["POST", "/v1/chat/completions", "ok"],
    ["POST", "/v1//chat/completions/", "ok"],
    ["POST", "/v1/chat/%63ompletions", "ok"],
    ["GET", "/v1/models", "ok"],
    ["POST", "/v1/messages/count_tokens", "ok"],
    ["GET", "/v1/chat/completions", "method"],
    ["GET", "/v1/files", "not_found"],
    ["GET", "/v1/responses/resp_1", "not_found"],
    ["POST", "/v1/messages/batches", "not_found"],
    ["POST", "/v1/chat%2Fcompletions", "malformed"],
    ["POST", "/v1/chat%5Ccompletions", "malformed"],
    ["POST", "/v1/chat\\completions", "malformed"],
    ["POST", "/v1/chat/completions;x", "malformed"],
    ["POST", "/v1/chat/completions/..;/x", "malformed"],
    ["POST", "/v1/x/../chat/completions", "malformed"],
    ["POST", "/v1/x/%2e%2e/chat/completions", "malformed"],
    ["POST", "/v1/chat/%252e%252e/completions", "malformed"],
    ["POST", "/v1/chat/completions%00", "malformed"],
    ["POST", "/v1/chat/completions%zz", "malformed"],
  ];
  for (const [method, path, want] of table)
    test(`${method} ${path}: ${want}`, () => {
      const r = checkPath(method, path, none);
      expect(r.ok ? "ok" : r.reason).toBe(want);
    });

  test("an operator-added path is forwarded without an endpoint entry (unmetered)", () => {
    const r = checkPath("POST", "/v1/moderations", new Set(["/v1/moderations"]));
    expect(r).toEqual({ ok: true, path: "/v1/moderations", endpoint: null });
  });
});

test("EXTRA_PATHS entries are plain /v1 paths that are not already metered", () => {
  expect(checkExtraPath("/v1/moderations")).toBeNull();
  expect(checkExtraPath("/v2/x")).toContain("/v1/");
  expect(checkExtraPath("/v1/a/../files")).not.toBeNull();
  expect(checkExtraPath("/v1/a%2Fb")).not.toBeNull();
  expect(checkExtraPath("/v1/chat/completions")).toContain("already");
});

test("background responses are deferred work", () => {
  expect(deferredWork("/v1/responses", { background: true })).toContain("background");
  expect(deferredWork("/v1/responses", { background: false })).toBeNull();
  expect(deferredWork("/v1/chat/completions", { background: true })).toBeNull();
});
