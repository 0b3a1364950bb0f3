import { describe, expect, test } from "bun:test";
import { type SseEvent, SseParser } from "./sse.ts";
import { decodeEvent, SseByteScanner } from "./sse-bytes.ts";
import { StreamUsage } from "./usage.ts";
import { ByteUsageReader, isContentEvent, usageObjectAt } from "./usage-bytes.ts";

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { ignoreBOM: true });

interface Found {
  raw: string;
  event: string | undefined;
  data: string | undefined;
  dataLines: number;
  name: string | undefined;
}

/** Scans `chunks`; every event as `SseParser` would give it, plus the byte fields. */
function scanAll(chunks: Uint8Array[]): Found[] {
  const out: Found[] = [];
  const scanner = new SseByteScanner((buf, ev) => {
    const { event, data } = decodeEvent(buf, ev);
    out.push({
      raw: dec.decode(buf.subarray(ev.start, ev.end)),
      event,
      data,
      dataLines: ev.dataLines,
      name: ev.nameStart === -1 ? undefined : dec.decode(buf.subarray(ev.nameStart, ev.nameEnd)),
    });
  });
  for (const c of chunks) scanner.push(c);
  scanner.end();
  return out;
}

function parseAll(text: string): SseEvent[] {
  const p = new SseParser();
  const out = p.push(text);
  const last = p.end();
  if (last) out.push(last);
  return out;
}

/** Every way of cutting `bytes` in two, plus one byte at a time. */
function splits(bytes: Uint8Array): Uint8Array[][] {
  const ways: Uint8Array[][] = [[bytes], Array.from(bytes, (_, i) => bytes.subarray(i, i + 1))];
  for (let i = 1; i < bytes.length; i++) ways.push([bytes.subarray(0, i), bytes.subarray(i)]);
  return ways;
}

const texts: Record<string, string> = {
  LF: "data: a\n\ndata: b\n\n",
  CRLF: "event: x\r\ndata: a\r\n\r\ndata: b\r\n\r\n",
  "CR alone": "data: a\r\rdata: b\r\r",
  "mixed endings": "data: a\r\n\ndata: b\r\r\ndata: c\n\r\n",
  "multi-line data": "data: one\ndata: two\n\n",
  comments: ": keep-alive\n\ndata: x\n\n",
  "no space after colon, field without colon": "data:x\n\ndata\n\nevent\ndata: y\n\n",
  "names that only start like a field": "database: 1\neventful: 2\ndata: z\n\n",
  "event names, last wins": "event: a\nevent: message_start\ndata: {}\n\nevent: ping\ndata: {}\n\n",
  "multi-byte characters": 'data: {"t":"é✓😀"}\n\nevent: ü\ndata: ✓\n\n',
  "unterminated last event": "data: a\n\ndata: tail",
  "unterminated after a CR": "data: a\r",
  "empty line first": "\ndata: a\n\n",
  "byte-order mark": "\uFEFFdata: a\n\ndata: \uFEFFb\n\n",
};

describe("SseByteScanner", () => {
  for (const [name, text] of Object.entries(texts)) {
    test(`${name}: the events SseParser finds, split at every byte`, () => {
      const bytes = enc.encode(text);
      // As the gateway read streams before: decoded (a leading mark dropped), then parsed.
      const want = parseAll(new TextDecoder().decode(bytes));
      for (const chunks of splits(bytes)) {
        const got = scanAll(chunks);
        expect(got.map((e) => [e.event, e.data])).toEqual(want.map((e) => [e.event, e.data]));
        expect(got.map((e) => e.name)).toEqual(want.map((e) => e.event));
        expect(got.map((e) => e.dataLines > 0)).toEqual(want.map((e) => e.data !== undefined));
        // Every byte is in exactly one event, the mark included.
        expect(enc.encode(got.map((e) => e.raw).join(""))).toEqual(bytes);
      }
    });
  }

  test("push hands back whole events only once they are complete, the tail held", () => {
    const seen: string[] = [];
    const scanner = new SseByteScanner((buf, ev) => {
      seen.push(dec.decode(buf.subarray(ev.start, ev.end)));
    });
    let buf = scanner.push(enc.encode("data: a\n\ndata: par"));
    expect(scanner.complete).toBe(9);
    expect(scanner.holding).toBe(true);
    buf = scanner.push(enc.encode("tial\n\n"));
    expect(dec.decode(buf)).toBe("data: partial\n\n");
    expect(scanner.complete).toBe(buf.length);
    expect(scanner.holding).toBe(false);
    expect(seen).toEqual(["data: a\n\n", "data: partial\n\n"]);
  });

  test("a buffer handed out is never written again", () => {
    const scanner = new SseByteScanner(() => {});
    scanner.push(enc.encode("data: a"));
    const first = scanner.push(enc.encode("\n\ndata: b"));
    const copy = first.slice();
    scanner.push(enc.encode("\n\ndata: c"));
    scanner.push(enc.encode("\n\n"));
    expect(first).toEqual(copy);
  });
});

describe("usageObjectAt", () => {
  const table: Array<[string, boolean]> = [
    ['{"usage":{"total_tokens":3}}', true],
    ['{"usage" : \t{"a":1}}', true],
    ['{"usage":null}', false],
    ['{"message":{"usage":{"input_tokens":1}}}', true],
    ['{"text":"usage"}', false],
    ['{"usage":null,"x":"g","response":{"usage":{}}}', true],
    ["", false],
  ];
  for (const [text, want] of table)
    test(text || "(empty)", () => expect(usageObjectAt(enc.encode(text), 0) !== -1).toBe(want));

  test("searches from the offset given", () => {
    const bytes = enc.encode('{"usage":{}} {"usage":{}}');
    expect(usageObjectAt(bytes, 0)).toBe(1);
    expect(usageObjectAt(bytes, 2)).toBe(14);
    expect(usageObjectAt(bytes, 15)).toBe(-1);
  });
});

describe("isContentEvent on bytes", () => {
  const table: Array<[string, "openai" | "anthropic", string, boolean]> = [
    ["openai chunk", "openai", 'data: {"choices":[]}\n\n', true],
    ["openai [DONE]", "openai", "data: [DONE]\n\n", false],
    ["openai [DONE] twice is data", "openai", "data: [DONE]\ndata: [DONE]\n\n", true],
    ["openai comment", "openai", ": ping\n\n", false],
    ["responses delta", "openai", "event: response.output_text.delta\ndata: {}\n\n", true],
    ["responses other", "openai", "event: response.created\ndata: {}\n\n", false],
    ["anthropic delta", "anthropic", "event: content_block_delta\ndata: {}\n\n", true],
    ["anthropic delta without data", "anthropic", "event: content_block_delta\n\n", false],
    ["anthropic ping", "anthropic", "event: ping\ndata: {}\n\n", false],
  ];
  for (const [name, dialect, text, want] of table)
    test(name, () => {
      const got: boolean[] = [];
      const scanner = new SseByteScanner((buf, ev) => got.push(isContentEvent(dialect, buf, ev)));
      scanner.push(enc.encode(text));
      expect(got).toEqual([want]);
    });
});

describe("ByteUsageReader reads what StreamUsage reads from parsed text", () => {
  const streams: Array<[string, "openai" | "anthropic", string]> = [
    [
      "openai chat with usage on every chunk",
      "openai",
      'data: {"choices":[{"delta":{"content":"a"}}],"usage":{"total_tokens":3}}\n\n' +
        'data: {"choices":[{"delta":{"content":"b"}}],"usage":null}\n\n' +
        ": ping\n\n" +
        'data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3}}\n\n' +
        "data: [DONE]\n\n",
    ],
    [
      "openai Responses API",
      "openai",
      'event: response.created\ndata: {"type":"response.created","response":{"usage":null}}\n\n' +
        'event: response.output_text.delta\ndata: {"delta":"a"}\n\n' +
        'event: response.completed\ndata: {"response":{"usage":{"input_tokens":4,"output_tokens":2,"total_tokens":6}}}\n\n',
    ],
    [
      "anthropic",
      "anthropic",
      'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":11,"output_tokens":1}}}\n\n' +
        'event: ping\ndata: {"type":"ping"}\n\n' +
        'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"\\"usage\\": {"}}\n\n' +
        'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":5}}\n\n',
    ],
  ];
  for (const [name, dialect, text] of streams)
    test(name, () => {
      const want = new StreamUsage(dialect);
      const hiddenWant = parseAll(text).map((ev) => want.observe(ev));
      const got = new StreamUsage(dialect);
      const reader = new ByteUsageReader(got, dialect);
      const hiddenGot: boolean[] = [];
      const scanner = new SseByteScanner((buf, ev) => hiddenGot.push(reader.observe(buf, ev)));
      scanner.push(enc.encode(text));
      scanner.end();
      expect(hiddenGot).toEqual(hiddenWant);
      expect([got.tokens, got.usage, got.contentEvents, got.complete]).toEqual([
        want.tokens,
        want.usage,
        want.contentEvents,
        want.complete,
      ]);
    });
});
