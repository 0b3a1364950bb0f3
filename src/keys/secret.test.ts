import { describe, expect, test } from "bun:test";
import { displayPrefix, generateKey, hashKey, isPlausibleKey, maskedKey } from "./secret.ts";

describe("key secrets", () => {
  test("new keys: pk_ plus 32 random bytes, never twice the same", () => {
    const a = generateKey();
    expect(a).toMatch(/^pk_[A-Za-z0-9_-]{43}$/);
    expect(generateKey()).not.toBe(a);
  });

  test("hash is SHA-256 hex", () => {
    expect(hashKey("pk_test")).toBe(new Bun.CryptoHasher("sha256").update("pk_test").digest("hex"));
  });

  test("display: our keys show their random start; others their ends", () => {
    const k = generateKey();
    expect(displayPrefix(k)).toBe(k.slice(0, 10));
    expect(maskedKey(displayPrefix(k))).toBe(`${k.slice(0, 10)}…`);
    expect(displayPrefix("pk_legacy_000001_abcdefgh")).toBe("pk_leg…efgh");
    expect(maskedKey("pk_leg…efgh")).toBe("pk_leg…efgh");
    expect(displayPrefix("short")).toBe("sho…");
  });

  test("implausible keys are refused before hashing", () => {
    expect(isPlausibleKey(generateKey())).toBe(true);
    expect(isPlausibleKey("")).toBe(false);
    expect(isPlausibleKey("x".repeat(257))).toBe(false);
    expect(isPlausibleKey("pk_with space")).toBe(false);
    expect(isPlausibleKey("pk_ünï")).toBe(false);
  });
});
