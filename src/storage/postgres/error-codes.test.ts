import { describe, expect, test } from "bun:test";
import { isPermanentPgError, isStaleConnection, readRetryingStale } from "./error-codes.ts";

const withCode = (code: string) => Object.assign(new Error(code), { code });
/** As Drizzle reports a failed query: its own error, the driver's as the cause. */
const wrapped = (code: string) => new Error("Failed query: select 1", { cause: withCode(code) });

describe("classifying PostgreSQL errors", () => {
  test("a connection the server closed: the driver's, the socket's, PostgreSQL's connection, shutdown and idle-timeout codes, bare or wrapped by Drizzle", () => {
    for (const code of [
      "CONNECTION_CLOSED",
      "ECONNRESET",
      "EPIPE",
      "08003",
      "08006",
      "57P01",
      "57P02",
      "57P05",
    ]) {
      expect({ code, stale: isStaleConnection(withCode(code)) }).toEqual({ code, stale: true });
      expect({ code, stale: isStaleConnection(wrapped(code)) }).toEqual({ code, stale: true });
    }
  });

  test("a database that is out, a pool that was ended or a failed query is not one", () => {
    for (const err of [
      withCode("ECONNREFUSED"),
      withCode("CONNECT_TIMEOUT"),
      withCode("CONNECTION_DESTROYED"),
      wrapped("42601"),
      withCode("55P03"),
      new Error("boom"),
      null,
      "x",
    ]) {
      expect(isStaleConnection(err)).toBe(false);
    }
  });

  test("a wrong password or a missing database is permanent", () => {
    expect(isPermanentPgError(withCode("28P01"))).toBe(true);
    expect(isPermanentPgError(wrapped("3D000"))).toBe(true);
    expect(isPermanentPgError(withCode("CONNECTION_CLOSED"))).toBe(false);
  });
});

describe("a read on a pooled connection the server closed", () => {
  /** A read that fails `dead` times first, as the pool's closed connections answer. */
  function readThrough(dead: number, err = wrapped("CONNECTION_CLOSED")) {
    let calls = 0;
    const run = async () => {
      if (calls++ < dead) throw err;
      return "row";
    };
    return { run, calls: () => calls };
  }

  test("is tried again on another connection and answers", async () => {
    const read = readThrough(1);
    expect(await readRetryingStale(read.run, 10)).toBe("row");
    expect(read.calls()).toBe(2);
  });

  test("after a database restart every connection left dead fails once: the read goes on to a live one", async () => {
    // Five dead connections in a row, as a pool of ten may hold after a restart.
    const read = readThrough(5);
    expect(await readRetryingStale(read.run, 10)).toBe("row");
    expect(read.calls()).toBe(6);
  });

  test("is tried at most once per pooled connection and once more, then fails with the connection's error", async () => {
    const read = readThrough(100);
    await expect(readRetryingStale(read.run, 3)).rejects.toThrow("Failed query");
    expect(read.calls()).toBe(4);
  });

  test("a refused connection is not tried again: the database is out", async () => {
    const read = readThrough(1, withCode("ECONNREFUSED"));
    await expect(readRetryingStale(read.run, 10)).rejects.toThrow("ECONNREFUSED");
    expect(read.calls()).toBe(1);
  });
});
