import { describe, expect, test } from "bun:test";
import { GatewayError } from "../errors.ts";
import { MAX_JSON_DEPTH, nestedDeeperThan, parseJsonObject } from "./body.ts";

const enc = new TextEncoder();
const nested = (depth: number) =>
  `{"model":"m","x":${"[".repeat(depth - 1)}${"]".repeat(depth - 1)}}`;

describe("parseJsonObject", () => {
  test("gives the object and its text, without a byte-order mark", () => {
    const text = '{"model":"m","n":1}';
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...enc.encode(text)]);
    expect(parseJsonObject(bytes)).toEqual({ text, value: { model: "m", n: 1 } });
  });

  test(`JSON nested up to ${MAX_JSON_DEPTH} levels is read; deeper is a 400 that says so`, () => {
    expect(parseJsonObject(enc.encode(nested(MAX_JSON_DEPTH))).value.model).toBe("m");
    for (const depth of [MAX_JSON_DEPTH + 1, 100_000]) {
      let thrown: unknown;
      try {
        parseJsonObject(enc.encode(nested(depth)));
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(GatewayError);
      expect((thrown as GatewayError).code).toBe("invalid_request");
      expect((thrown as GatewayError).message).toContain("nested too deeply");
    }
  });
});

describe("nestedDeeperThan", () => {
  test("counts objects and arrays alike, through every branch", () => {
    expect(nestedDeeperThan({}, 1)).toBe(false);
    expect(nestedDeeperThan({ a: [] }, 1)).toBe(true);
    expect(nestedDeeperThan({ a: "[[[[", b: [1, 2] }, 2)).toBe(false);
    const wide = { a: [{}], b: { c: [{ d: [] }] } };
    expect(nestedDeeperThan(wide, 5)).toBe(false);
    expect(nestedDeeperThan(wide, 4)).toBe(true);
  });
});
