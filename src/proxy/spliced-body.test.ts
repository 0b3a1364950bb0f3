import { describe, expect, test } from "bun:test";
import { SHARED_MAX_BYTES, SplicedBody } from "./spliced-body.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const body = (...parts: string[]) => new SplicedBody(parts.map((p) => enc.encode(p)));

describe("SplicedBody", () => {
  test("its bytes are its pieces in order, counted in UTF-8 bytes", () => {
    const b = body('{"model":"m",', '"messages":["é ✓"]', "}");
    expect(b.byteLength).toBe(enc.encode('{"model":"m","messages":["é ✓"]}').byteLength);
    expect(dec.decode(b.bytes())).toBe('{"model":"m","messages":["é ✓"]}');
    expect(dec.decode(b.lend())).toBe('{"model":"m","messages":["é ✓"]}');
  });

  test("lent bytes share one buffer, valid until the next lend; its own bytes are never touched", () => {
    const first = body('{"a":', "1}");
    const second = body('{"b":', "22}");
    const own = first.bytes();
    const lent = first.lend();
    expect(dec.decode(lent)).toBe('{"a":1}');
    const again = second.lend();
    expect(again.buffer).toBe(lent.buffer);
    expect(dec.decode(again)).toBe('{"b":22}');
    // The first loan is overwritten: it had to be handed on at once.
    expect(dec.decode(lent)).not.toBe('{"a":1}');
    expect(dec.decode(own)).toBe('{"a":1}');
  });

  test("a larger body grows the shared buffer; one above the bound gets a buffer of its own", () => {
    body("x".repeat(10)).lend();
    const larger = body("y".repeat(100_000));
    const lent = larger.lend();
    expect(lent.byteLength).toBe(100_000);
    expect(dec.decode(lent)).toBe("y".repeat(100_000));
    const huge = new SplicedBody([new Uint8Array(SHARED_MAX_BYTES + 1).fill(0x7a)]);
    const alone = huge.lend();
    expect(alone.byteLength).toBe(SHARED_MAX_BYTES + 1);
    expect(alone.buffer).not.toBe(lent.buffer);
    // The shared buffer is left as the larger body wrote it.
    expect(lent[0]).toBe(0x79);
    expect(dec.decode(lent)).toBe("y".repeat(100_000));
  });

  test("an empty body is empty", () => {
    const b = new SplicedBody([]);
    expect(b.byteLength).toBe(0);
    expect(b.bytes().byteLength).toBe(0);
    expect(b.lend().byteLength).toBe(0);
  });
});
