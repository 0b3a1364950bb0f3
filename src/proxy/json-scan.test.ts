import { describe, expect, test } from "bun:test";
import { scanObject } from "./json-scan.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** What a strict parser says of `text`: the object's members as [key, value] pairs in order, or null. */
function parsed(text: string): Array<[string, unknown]> | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return null;
  return Object.entries(v);
}

/** What the scanner says of `bytes`: the same pairs, each value parsed from its own bytes, or null. */
function scanned(bytes: Uint8Array, wordsFrom?: number): Array<[string, unknown]> | null {
  const s = scanObject(bytes, 1000, wordsFrom);
  if (s === null) return null;
  // Built as a parser builds it, so keys that look like indexes sort alike.
  const out: Record<string, unknown> = {};
  for (const m of s.members) {
    const key = JSON.parse(dec.decode(bytes.subarray(m.keyStart, m.keyEnd))) as string;
    const value = JSON.parse(dec.decode(bytes.subarray(m.valueStart, m.valueEnd)));
    Object.defineProperty(out, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return Object.entries(out);
}

/** The same bytes at every offset from a word boundary: the scanner reads four at a time. */
function atOffsets(bytes: Uint8Array): Uint8Array[] {
  return [0, 1, 2, 3].map((pad) => {
    const buf = new Uint8Array(bytes.byteLength + pad + 3);
    buf.set(bytes, pad);
    return buf.subarray(pad, pad + bytes.byteLength);
  });
}

/** Byte by byte, and four bytes at a time wherever a string allows (however short the body). */
const WAYS = [Number.POSITIVE_INFINITY, 0];

function agrees(text: string): void {
  const want = parsed(text);
  for (const bytes of atOffsets(enc.encode(text))) {
    for (const wordsFrom of WAYS) {
      expect({ text, wordsFrom, got: scanned(bytes, wordsFrom) }).toEqual({
        text,
        wordsFrom,
        got: want,
      });
    }
  }
}

const VALID = [
  "{}",
  " \t\r\n{ } \n",
  '{"a":1}',
  '{"model":"glm-4.7","messages":[{"role":"user","content":"hi"}],"max_tokens":64}',
  '{"a":[],"b":{},"c":[[]],"d":[{}],"e":{"f":{"g":[1,2,{"h":null}]}}}',
  '{"n":0,"m":-0,"o":-12.5e-3,"p":1E+2,"q":3.25,"r":1e400,"s":123456789012345678901}',
  '{"t":true,"f":false,"z":null}',
  '{"s":"quote \\" backslash \\\\ slash \\/ \\b\\f\\n\\r\\t \\u00e9 \\uD83D\\uDE00 é ✓ 😀"}',
  '{"dup":1,"x":2,"dup":3}',
  '{"__proto__":{"polluted":true},"a":1}',
  '{"\\u006dodel":"m","":0}',
  '{ "a" : [ 1 , 2 ] , "b" : { "c" : "d" } }',
  `{"long":"${"abcdefgh".repeat(1000)}","after":1}`,
];

const INVALID = [
  "",
  " ",
  "[]",
  '"a"',
  "1",
  "null",
  "{",
  "}",
  '{"a"}',
  '{"a":}',
  '{"a":1,}',
  '{,"a":1}',
  '{"a":1 "b":2}',
  '{"a":[1,]}',
  '{"a":[,1]}',
  '{"a":[1 2]}',
  "{'a':1}",
  "{a:1}",
  '{"a":01}',
  '{"a":1.}',
  '{"a":.5}',
  '{"a":-}',
  '{"a":+1}',
  '{"a":1e}',
  '{"a":1e+}',
  '{"a":0x10}',
  '{"a":NaN}',
  '{"a":Infinity}',
  '{"a":True}',
  '{"a":nul}',
  '{"a":"unterminated}',
  '{"a":"bad \\x escape"}',
  '{"a":"bad \\u12G4"}',
  '{"a":"short \\u12"}',
  '{"a":"raw\ttab"}',
  '{"a":"raw\nnewline"}',
  '{"a":"raw\u0001"}',
  '{"a":1}{"b":2}',
  '{"a":1} x',
  '{"a":1}/* c */',
  '{"a":1\u00a0}',
  '{"a":1\u000b}',
  '{"a":1\u000c}',
  '{"a":{"b":1]}',
  '{"a":[1}',
  '{"a":"x"\\}',
];

describe("scanObject reads what a strict parser reads, no more, no less", () => {
  test("valid objects: every member, in order, the last of a repeated key", () => {
    for (const text of VALID) agrees(text);
    // And the scanner does accept each of them.
    for (const text of VALID) expect(scanObject(enc.encode(text), 1000)).not.toBeNull();
  });

  test("anything else is refused: not JSON, or not an object", () => {
    for (const text of INVALID) {
      expect({ text, parser: parsed(text) }).toEqual({ text, parser: null });
      for (const bytes of atOffsets(enc.encode(text))) {
        for (const wordsFrom of WAYS) {
          expect({ text, scanner: scanObject(bytes, 1000, wordsFrom) }).toEqual({
            text,
            scanner: null,
          });
        }
      }
    }
  });

  test("a byte-order mark is skipped, and where the object starts is said", () => {
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...enc.encode(' {"a":1}')]);
    expect(scanObject(bytes, 1000)?.start).toBe(4);
    expect(scanObject(enc.encode('{"a":1}'), 1000)?.start).toBe(0);
  });

  test("nesting is counted like the full reader's: the top object is 1", () => {
    const nested = (depth: number) =>
      `{"model":"m","x":${"[".repeat(depth - 1)}${"]".repeat(depth - 1)}}`;
    expect(scanObject(enc.encode(nested(1000)), 1000)).not.toBeNull();
    expect(scanObject(enc.encode(nested(1001)), 1000)).toBeNull();
    expect(scanObject(enc.encode(nested(100_000)), 1000)).toBeNull();
    const objects = (depth: number) => `${'{"a":'.repeat(depth - 1)}{}${"}".repeat(depth - 1)}`;
    expect(scanObject(enc.encode(objects(3)), 3)).not.toBeNull();
    expect(scanObject(enc.encode(objects(4)), 3)).toBeNull();
    // Each branch counts on its own: a, then the arrays in it, then what is in those.
    expect(scanObject(enc.encode('{"a":[{},[],[1,"[[["]],"b":{}}'), 3)).not.toBeNull();
    expect(scanObject(enc.encode('{"a":[{},[],[{}]]}'), 3)).toBeNull();
    expect(scanObject(enc.encode('{"a":[{},[],[1]],"b":{"c":[[]]}}'), 3)).toBeNull();
  });

  test("a quote, backslash or control byte is found wherever it falls in a word", () => {
    for (let pad = 0; pad < 12; pad++) {
      const filler = "x".repeat(pad);
      agrees(`{"a":"${filler}","b":1}`);
      agrees(`{"a":"${filler}\\"${filler}","b":1}`);
      agrees(`{"a":"${filler}\\\\","b":1}`);
      agrees(`{"a":"${filler}\n${filler}"}`);
      agrees(`{"a":"${filler}\u001f"}`);
      agrees(`{"a":"${filler}é\u00a2\u00dc✓"}`);
      // Bytes one bit away from a quote or a backslash (0xa2, 0xdc) are text.
      agrees(`{"a":"${filler}\u00a2\u00dc${filler}"}`);
      agrees(`{"a":"${filler}`);
    }
  });

  test("random edits of valid bodies: the scanner and a strict parser always agree", () => {
    // Deterministic, so a failure can be replayed.
    let seed = 42;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const seen = { accepted: 0, refused: 0 };
    const alphabet = ' \t\n{}[]:,"\\/0123456789-+.eEtrufalsn\u0000\u001fé';
    for (let round = 0; round < 10_000; round++) {
      let text = VALID[random(VALID.length)] as string;
      for (let edits = 1 + random(3); edits > 0; edits--) {
        const at = random(text.length + 1);
        const c = alphabet[random(alphabet.length)] as string;
        const kind = random(3);
        if (kind === 0) text = text.slice(0, at) + c + text.slice(at);
        else if (kind === 1) text = text.slice(0, at) + text.slice(at + 1);
        else text = text.slice(0, at) + c + text.slice(at + 1);
      }
      // As bytes on the wire: a split surrogate pair is encoded as U+FFFD.
      const bytes = enc.encode(text);
      const want = parsed(dec.decode(bytes));
      for (const wordsFrom of WAYS) {
        const got = scanned(bytes, wordsFrom);
        if (JSON.stringify(got) !== JSON.stringify(want)) {
          expect({ text, wordsFrom, got }).toEqual({ text, wordsFrom, got: want });
        }
      }
      if (want === null) seen.refused++;
      else seen.accepted++;
    }
    // Both kinds were tried, many times.
    expect(seen.accepted).toBeGreaterThan(500);
    expect(seen.refused).toBeGreaterThan(500);
  });
});
