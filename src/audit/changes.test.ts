import { describe, expect, test } from "bun:test";
import type { KeyRecord } from "../storage/types.ts";
import { keyChanges, updateAction } from "./changes.ts";

const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);
const key: KeyRecord = {
  id: "key_1",
  keyHash: "a".repeat(64),
  keyPrefix: "pk_abcdefg",
  name: "alice",
  tokenLimit: 100,
  model: null,
  expiresAt: null,
  maxConcurrent: null,
  weeklyLimit: null,
  allowedModels: null,
  disabled: false,
  createdAt: T0,
  updatedAt: T0,
  lastUsedAt: null,
  totalTokens: 0,
  totalRequests: 0,
  revokedAt: null,
};

describe("keyChanges", () => {
  test("lists only the fields that changed, before and after, never the hash", () => {
    const after = { ...key, tokenLimit: 200, keyHash: "b".repeat(64), updatedAt: T0 + 1 };
    expect(keyChanges(key, after)).toEqual({ token_limit_per_5h: { before: 100, after: 200 } });
  });

  test("a created key has every field after and none before", () => {
    const c = keyChanges(null, key);
    expect(c.name).toEqual({ before: null, after: "alice" });
    expect(c.prefix).toEqual({ before: null, after: "pk_abcdefg" });
    expect(JSON.stringify(c)).not.toContain("a".repeat(64));
  });

  test("times are ISO strings", () => {
    expect(keyChanges(key, { ...key, revokedAt: T0 })).toEqual({
      revoked_at: { before: null, after: new Date(T0).toISOString() },
    });
  });
});

describe("updateAction", () => {
  test.each([
    [{ disabled: { before: false, after: true } }, "key.disable"],
    [{ disabled: { before: true, after: false } }, "key.enable"],
    [{ name: { before: "a", after: "b" } }, "key.update"],
    [{ disabled: { before: false, after: true }, name: { before: "a", after: "b" } }, "key.update"],
  ])("%j is %s", (changes, action) => {
    expect(updateAction(changes)).toBe(action);
  });
});

describe("keyChanges on the plan fields", () => {
  test("a weekly limit and allowed models are audited; an equal list is no change", () => {
    const after = { ...key, weeklyLimit: 5000, allowedModels: ["glm-4.*"] };
    expect(keyChanges(key, after)).toEqual({
      token_limit_per_week: { before: null, after: 5000 },
      allowed_models: { before: null, after: ["glm-4.*"] },
    });
    expect(keyChanges(after, { ...after, allowedModels: ["glm-4.*"] })).toEqual({});
  });
});
