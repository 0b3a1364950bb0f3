import { describe, expect, test } from "bun:test";
import { isConnectionLost, isPermanentPgError } from "./open.ts";

const withCode = (code: string) => Object.assign(new Error(code), { code });

describe("classifying storage errors", () => {
  test("a broken connection: the driver's, the socket's, PostgreSQL's connection and shutdown codes", () => {
    for (const code of [
      "CONNECTION_CLOSED",
      "CONNECTION_DESTROYED",
      "ECONNRESET",
      "ECONNREFUSED",
      "08006",
      "57P01",
    ]) {
      expect({ code, lost: isConnectionLost(withCode(code)) }).toEqual({ code, lost: true });
    }
  });

  test("a failed query is not one: a syntax error, a lock timeout, no code at all", () => {
    for (const err of [withCode("42601"), withCode("55P03"), new Error("boom"), null, "x"]) {
      expect(isConnectionLost(err)).toBe(false);
    }
  });

  test("a wrong password or a missing database is permanent", () => {
    expect(isPermanentPgError(withCode("28P01"))).toBe(true);
    expect(isPermanentPgError(withCode("3D000"))).toBe(true);
    expect(isPermanentPgError(withCode("CONNECTION_CLOSED"))).toBe(false);
  });
});
