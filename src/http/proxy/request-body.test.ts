import { describe, expect, test } from "bun:test";
import { giveBack, type RequestBody } from "./request-body.ts";

const prepared = (received: Uint8Array | null): RequestBody => ({
  body: received,
  json: null,
  hideUsageChunk: false,
  model: undefined,
  received,
});

describe("giving a body's memory back once it is sent", () => {
  test("a large body that owns its buffer is detached", () => {
    const bytes = new Uint8Array(256 * 1024).fill(0x61);
    giveBack(prepared(bytes));
    expect(bytes.buffer.detached).toBe(true);
    expect(bytes.byteLength).toBe(0);
  });

  test("a small body, a view into a larger buffer and no body are left alone", () => {
    const small = new Uint8Array(1024);
    giveBack(prepared(small));
    expect(small.buffer.detached).toBe(false);
    const shared = new Uint8Array(512 * 1024);
    const view = shared.subarray(1, 300 * 1024);
    giveBack(prepared(view));
    expect(shared.buffer.detached).toBe(false);
    const head = shared.subarray(0, 300 * 1024);
    giveBack(prepared(head));
    expect(shared.buffer.detached).toBe(false);
    expect(() => giveBack(prepared(null))).not.toThrow();
  });

  test("from 64 KiB on; a body already given back is no error", () => {
    const under = new Uint8Array(64 * 1024 - 1);
    giveBack(prepared(under));
    expect(under.buffer.detached).toBe(false);
    const at = new Uint8Array(64 * 1024);
    const detachedView = new Uint8Array(at.buffer);
    giveBack(prepared(at));
    expect(at.buffer.detached).toBe(true);
    expect(() => giveBack(prepared(detachedView))).not.toThrow();
  });
});
