import { describe, expect, test } from "bun:test";
import { SplicedBody } from "./spliced-body.ts";
import { RawJson, readTopLevel, spliceBody } from "./top-level.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const read = (text: string) => readTopLevel(enc.encode(text), 1000);
const sent = (body: string | SplicedBody) =>
  typeof body === "string" ? body : dec.decode(body.bytes());

describe("readTopLevel", () => {
  test("governed fields are parsed; every other value stays the bytes it came as", () => {
    const top = read(
      '{"model":"glm-4.7","max_tokens":64,"stream":true,"stream_options":{"include_usage":true},"messages":[ {"role":"user","content":"hi \\u00e9"} ],"temperature":0.5}',
    );
    expect(top?.plain).toBe(true);
    const v = top?.value as Record<string, unknown>;
    expect(Object.keys(v)).toEqual([
      "model",
      "max_tokens",
      "stream",
      "stream_options",
      "messages",
      "temperature",
    ]);
    expect(v.model).toBe("glm-4.7");
    expect(v.max_tokens).toBe(64);
    expect(v.stream).toBe(true);
    expect(v.stream_options).toEqual({ include_usage: true });
    expect(v.messages).toBeInstanceOf(RawJson);
    expect(dec.decode((v.messages as RawJson).bytes)).toBe(
      '[ {"role":"user","content":"hi \\u00e9"} ]',
    );
    expect(dec.decode((v.temperature as RawJson).bytes)).toBe("0.5");
  });

  test("keys are read as a parser reads them: escapes decoded, the last of a repeat, __proto__ a plain key", () => {
    const v = read('{"max\\u005ftokens":100000,"x":1,"max_tokens":10}')?.value;
    expect(Object.keys(v ?? {})).toEqual(["max_tokens", "x"]);
    expect(v?.max_tokens).toBe(10);
    const proto = read('{"__proto__":{"polluted":true},"model":"m"}')?.value ?? {};
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
    expect(Object.keys(proto)).toEqual(["__proto__", "model"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test("unescaped keys are the very text a parser reads, a leading U+FEFF included", () => {
    const text =
      '{"\uFEFFmax_tokens":1,"\uFEFFmodel":"x","é":1,"键":2,"😀":3,"a\uFEFF":4,"model":"m"}';
    // Written raw, not as escapes: the JSON text holds the characters themselves.
    const raw = text.replace(/\\uFEFF/g, "\uFEFF");
    expect(raw).not.toContain("\\u");
    const v = read(raw)?.value ?? {};
    expect(Object.keys(v)).toEqual(Object.keys(JSON.parse(raw)));
    expect(v.max_tokens).toBeUndefined();
    expect(v["\uFEFFmax_tokens"]).toBeInstanceOf(RawJson);
    expect(v.model).toBe("m");
  });

  test("what is not one JSON object, or not UTF-8, or too deep, is left to the full reader", () => {
    expect(read('{"a":1,}')).toBeNull();
    expect(read("[1]")).toBeNull();
    expect(
      readTopLevel(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), 1000),
    ).toBeNull();
    expect(readTopLevel(enc.encode('{"a":[[]]}'), 2)).toBeNull();
  });
});

describe("spliceBody", () => {
  test("writes each member in order, the untouched ones as the bytes they came as", () => {
    const top = read('{ "messages" : [ 1, 2 ],\n "model": "a", "extra": {"k": "\\u00e9"} }');
    const body = { ...top?.value, model: "b", max_tokens: 5, gone: undefined };
    const out = spliceBody(body);
    expect(out).toBeInstanceOf(SplicedBody);
    expect(sent(out)).toBe(
      '{"messages":[ 1, 2 ],"model":"b","extra":{"k": "\\u00e9"},"max_tokens":5}',
    );
    expect(JSON.parse(sent(out))).toEqual({
      messages: [1, 2],
      model: "b",
      extra: { k: "é" },
      max_tokens: 5,
    });
  });

  test("keys are written as JSON, __proto__ included; a body without raw values is JSON.stringify's", () => {
    const top = read('{"__proto__":[1],"we\\"ird":{"a":1},"model":"m"}');
    const out = sent(spliceBody({ ...top?.value }));
    expect(out).toBe('{"__proto__":[1],"we\\"ird":{"a":1},"model":"m"}');
    expect(spliceBody({ model: "m", n: 1 })).toBe('{"model":"m","n":1}');
  });
});
