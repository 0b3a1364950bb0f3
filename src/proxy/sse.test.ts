import { describe, expect, test } from "bun:test";
import { type SseEvent, SseParser } from "./sse.ts";

function parseAll(chunks: string[]): SseEvent[] {
  const p = new SseParser();
  const out = chunks.flatMap((c) => p.push(c));
  const last = p.end();
  if (last) out.push(last);
  return out;
}

/** Every way of cutting `text` in two, plus one byte at a time. */
function splits(text: string): string[][] {
  const ways: string[][] = [[text], [...text]];
  for (let i = 1; i < text.length; i++) ways.push([text.slice(0, i), text.slice(i)]);
  return ways;
}

const cases: Array<{
  name: string;
  text: string;
  data: Array<string | undefined>;
  events?: string[];
}> = [
  { name: "LF", text: "data: a\n\ndata: b\n\n", data: ["a", "b"] },
  { name: "CRLF", text: "data: a\r\n\r\ndata: b\r\n\r\n", data: ["a", "b"] },
  { name: "CR alone", text: "data: a\r\rdata: b\r\r", data: ["a", "b"] },
  { name: "mixed endings", text: "data: a\r\n\ndata: b\r\r\n", data: ["a", "b"] },
  { name: "multi-line data joins with LF", text: "data: one\ndata: two\n\n", data: ["one\ntwo"] },
  {
    name: "comment blocks carry no data",
    text: ": keep-alive\n\ndata: x\n\n",
    data: [undefined, "x"],
  },
  { name: "no space after colon", text: "data:x\n\n", data: ["x"] },
  {
    name: "event names",
    text: "event: message_start\ndata: {}\n\nevent: ping\ndata: {}\n\n",
    data: ["{}", "{}"],
    events: ["message_start", "ping"],
  },
  { name: "unterminated last event is kept", text: "data: a\n\ndata: tail", data: ["a", "tail"] },
];

describe("SseParser", () => {
  for (const c of cases) {
    test(`${c.name}, split at every byte boundary`, () => {
      for (const chunks of splits(c.text)) {
        const events = parseAll(chunks);
        expect(events.map((e) => e.data)).toEqual(c.data);
        if (c.events) expect(events.map((e) => e.event)).toEqual(c.events);
        // Raw text is forwarded byte for byte: nothing lost, nothing added.
        expect(events.map((e) => e.raw).join("")).toBe(c.text);
      }
    });
  }

  test("a JSON payload containing CR/LF-free text with colons parses whole", () => {
    const [ev] = parseAll(['data: {"a":"b: c"}\n\n']);
    expect(ev?.data).toBe('{"a":"b: c"}');
  });

  test("holds an incomplete event until its blank line arrives", () => {
    const p = new SseParser();
    expect(p.push("data: par")).toEqual([]);
    expect(p.push("tial\n")).toEqual([]);
    expect(p.push("\n").map((e) => e.data)).toEqual(["partial"]);
  });
});
