import { describe, expect, test } from "bun:test";
import { GOVERNED_FIELDS, lookalikeField, plainFieldText } from "./as-sent.ts";
import { prepareBody } from "./request.ts";
import { readTopLevel } from "./top-level.ts";

const enc = new TextEncoder();
/** Whether a body the rules leave alone may go as it came. */
const asItCame = (text: string) => readTopLevel(enc.encode(text), 1000)?.plain;

describe("a body goes as it came only when its governed fields are plain", () => {
  test("a plain body goes as it came, whatever its spacing and its strings hold", () => {
    expect(asItCame('{"model":"m","max_tokens":5,"messages":[]}')).toBe(true);
    expect(asItCame('{\n  "model" : "m",\n\t"stream": true, "n": -1 }')).toBe(true);
    // A governed name inside a string is text, not a key.
    expect(asItCame('{"messages":[{"content":"say \\"max_tokens\\": 9, é ✓"}]}')).toBe(true);
    // Values the gateway does not read may hold escapes and governed names:
    // they reach the upstream as they came, and it governs nothing by them.
    expect(asItCame('{"model":"m","messages":[{"content":"\\u00e9","model":"x"}]}')).toBe(true);
  });

  test("a field the gateway reads, named twice at the top level, is written anew", () => {
    for (const field of GOVERNED_FIELDS) {
      expect({ field, ok: asItCame(`{"${field}":1,"x":{},"${field}":2}`) }).toEqual({
        field,
        ok: false,
      });
    }
    // Inside a governed field too: stream_options.include_usage decides the usage chunk.
    expect(
      asItCame('{"stream":true,"stream_options":{"include_usage":false,"include_usage":true}}'),
    ).toBe(false);
  });

  test("a governed field spelled with a \\u escape, in its key or its value, is written anew", () => {
    expect(asItCame('{"max\\u005ftokens":100000,"max_tokens":10}')).toBe(false);
    expect(asItCame('{"\\u006dodel":"dear","model":"cheap"}')).toBe(false);
    expect(asItCame('{"\\u006dodel":"dear"}')).toBe(false);
    expect(asItCame('{"stream":true,"stream_options":{"include\\u005Fusage":false}}')).toBe(false);
    expect(asItCame('{"model":"gl\\u006d"}')).toBe(false);
  });

  test("a governed number that writing anew would rewrite, or past exact integers, is written anew", () => {
    expect(asItCame('{"max_tokens":1e400}')).toBe(false);
    expect(asItCame('{"n":9007199254740993}')).toBe(false);
    expect(asItCame('{"max_tokens":4096.5}')).toBe(false);
    expect(asItCame('{"max_tokens":4096,"temperature":0.7}')).toBe(true);
    // Integers written with a fraction or an exponent: strict parsers refuse them.
    expect(asItCame('{"max_tokens":1e3}')).toBe(false);
    expect(asItCame('{"n": 2.0}')).toBe(false);
    expect(asItCame('{"max_tokens":1E3}')).toBe(false);
    expect(asItCame('{"stream_options":{"include_usage":true,"n":1.5}}')).toBe(false);
  });

  test("a leading byte-order mark or space is written anew, as before", () => {
    const text = '{"model":"m"}';
    const bom = new Uint8Array([0xef, 0xbb, 0xbf, ...enc.encode(text)]);
    expect(readTopLevel(bom, 1000)?.plain).toBe(false);
    expect(readTopLevel(bom, 1000)?.value).toEqual({ model: "m" });
    expect(asItCame(` ${text}`)).toBe(false);
  });

  test("plainFieldText: a value's own text", () => {
    expect(plainFieldText('"glm-4.7"')).toBe(true);
    expect(plainFieldText("10")).toBe(true);
    expect(plainFieldText(" -3")).toBe(true);
    expect(plainFieldText("true")).toBe(true);
    expect(plainFieldText('{"include_usage":true}')).toBe(true);
    expect(plainFieldText("10.0")).toBe(false);
    expect(plainFieldText("1234567890123456")).toBe(false);
    expect(plainFieldText('{"include_usage":true,"include_usage":false}')).toBe(false);
  });

  test("every field the gateway reads is governed, and needs no escaping in a pattern", () => {
    for (const f of [
      "model",
      "stream",
      "stream_options",
      "include_usage",
      "max_tokens",
      "max_completion_tokens",
      "max_output_tokens",
      "n",
      "best_of",
      "background",
    ]) {
      expect(GOVERNED_FIELDS).toContain(f);
    }
    for (const f of GOVERNED_FIELDS) expect(f).toMatch(/^[a-z_]+$/);
  });
});

describe("lookalikeField", () => {
  test("a governed field in another case, at the top or in stream_options, is found", () => {
    expect(lookalikeField({ model: "m", MAX_TOKENS: 100000 })).toBe("MAX_TOKENS");
    expect(lookalikeField({ Model: "pricey" })).toBe("Model");
    // A Kelvin sign for the k, and a long s for the s.
    expect(lookalikeField({ "max_to\u212Aens": 5 })).toBe("max_to\u212Aens");
    expect(lookalikeField({ "\u017Ftream": true })).toBe("\u017Ftream");
    expect(lookalikeField({ stream_options: { Include_Usage: false } })).toBe("Include_Usage");
    // A ligature that upper-cases to two letters.
    expect(lookalikeField({ "\uFB05ream": true })).toBe("\uFB05ream");
  });

  test("the fields themselves, and other keys, are not", () => {
    expect(
      lookalikeField({ model: "m", max_tokens: 5, stream_options: { include_usage: true } }),
    ).toBeNull();
    expect(lookalikeField({ temperature: 1, Tools: [], messages: [{ MODEL: "x" }] })).toBeNull();
  });
});

describe("prepareBody says whether it changed the body", () => {
  test("unchanged: the model given, an override it already names, a stream already asking for usage", () => {
    const path = "/v1/chat/completions";
    expect(prepareBody("openai", path, { model: "m" }, null, "d").changed).toBe(false);
    expect(prepareBody("openai", path, { model: "k" }, "k", "d").changed).toBe(false);
    const asked = { model: "m", stream: true, stream_options: { include_usage: true } };
    expect(prepareBody("openai", path, asked, null, "d").changed).toBe(false);
    expect(
      prepareBody("anthropic", "/v1/messages", { model: "m", stream: true }, null, "d").changed,
    ).toBe(false);
  });

  test("changed: a default model, an override, usage asked for on the client's behalf", () => {
    const path = "/v1/chat/completions";
    expect(prepareBody("openai", path, {}, null, "d").changed).toBe(true);
    expect(prepareBody("openai", path, { model: "m" }, "k", "d").changed).toBe(true);
    expect(prepareBody("openai", path, { model: "m", stream: true }, null, "d").changed).toBe(true);
    const off = { model: "m", stream: true, stream_options: { include_usage: false } };
    expect(prepareBody("openai", path, off, null, "d").changed).toBe(true);
  });
});
