import { describe, expect, test } from "bun:test";
import { SseParser } from "./sse.ts";
import {
  anthropicTokens,
  hasUsageObject,
  openaiTokens,
  responseTokens,
  StreamUsage,
} from "./usage.ts";

describe("usage of whole responses", () => {
  const table: Array<[string, unknown, number | null]> = [
    ["openai total", { prompt_tokens: 11, completion_tokens: 5, total_tokens: 16 }, 16],
    ["openai without total", { prompt_tokens: 11, completion_tokens: 5 }, 16],
    ["openai big counts", { total_tokens: 5_000_000_000 }, 5_000_000_000],
    ["openai garbage fields count as 0", { total_tokens: "x" }, 0],
    ["openai missing usage", undefined, null],
  ];
  for (const [name, usage, want] of table) {
    test(name, () => expect(openaiTokens(usage)).toBe(want));
  }

  test("anthropic sums input, output and both cache counts", () => {
    expect(
      anthropicTokens({
        input_tokens: 11,
        output_tokens: 5,
        cache_creation_input_tokens: 3,
        cache_read_input_tokens: 2,
      }),
    ).toBe(21);
    expect(
      anthropicTokens({ input_tokens: 7, output_tokens: 1, cache_read_input_tokens: null }),
    ).toBe(8);
    expect(anthropicTokens(null)).toBeNull();
  });

  test("responseTokens picks the dialect", () => {
    expect(responseTokens("openai", { usage: { total_tokens: 3 } })).toBe(3);
    expect(responseTokens("anthropic", { usage: { input_tokens: 1, output_tokens: 2 } })).toBe(3);
    // count_tokens answers {input_tokens} at the top level: a count, not usage.
    expect(responseTokens("anthropic", { input_tokens: 40 })).toBeNull();
    expect(responseTokens("openai", [1, 2])).toBeNull();
  });
});

function feed(dialect: "openai" | "anthropic", text: string) {
  const p = new SseParser();
  const u = new StreamUsage(dialect);
  const hidden: string[] = [];
  for (const ev of p.push(text)) if (u.observe(ev)) hidden.push(ev.data ?? "");
  return { u, hidden };
}

describe("hasUsageObject", () => {
  const table: Array<[string, boolean]> = [
    ['{"usage":{"total_tokens":1}}', true],
    ['{"usage" : {"a":1}}', true],
    ['{"usage":null}', false],
    ['{"choices":[{"delta":{"content":"the usage"}}],"usage":null}', false],
    ['{"text":"\\"usage\\" here","usage":{"x":1}}', true],
    ['{"type":"message_delta","usage":{"output_tokens":5}}', true],
    ["{}", false],
  ];
  for (const [data, want] of table) test(data, () => expect(hasUsageObject(data)).toBe(want));
});

describe("StreamUsage", () => {
  test("openai: the usage-only chunk is read and flagged for hiding", () => {
    const { u, hidden } = feed(
      "openai",
      'data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n' +
        'data: {"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16}}\n\n' +
        "data: [DONE]\n\n",
    );
    expect(u.complete).toBe(true);
    expect(u.tokens).toBe(16);
    expect(hidden).toHaveLength(1);
    // The usage chunk and [DONE] carry no piece of the answer.
    expect(u.contentEvents).toBe(1);
  });

  test("openai: usage on a chunk that also has choices is counted but not hidden", () => {
    const { u, hidden } = feed(
      "openai",
      'data: {"choices":[{"delta":{}}],"usage":{"total_tokens":9}}\n\n',
    );
    expect(u.tokens).toBe(9);
    expect(hidden).toHaveLength(0);
  });

  test("openai: continuous usage on every chunk is charged from the last report, not the first", () => {
    const chunk = (n: number) =>
      `data: {"choices":[{"delta":{"content":"t"}}],"usage":{"prompt_tokens":4,"completion_tokens":${n},"total_tokens":${4 + n}}}\n\n`;
    const { u } = feed("openai", chunk(1) + chunk(2) + chunk(3));
    expect(u.tokens).toBe(7);
    // Content chunks' usage is not final: the stream still owes its usage chunk.
    expect(u.complete).toBe(false);
    const done = feed(
      "openai",
      `${chunk(1) + chunk(1000)}data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":1000,"total_tokens":1004}}\n\ndata: [DONE]\n\n`,
    );
    expect(done.u.tokens).toBe(1004);
    expect(done.u.complete).toBe(true);
  });

  test("openai: a stream that ends normally with usage only on its chunks is complete at its end", () => {
    const { u } = feed("openai", 'data: {"choices":[{"delta":{}}],"usage":{"total_tokens":9}}\n\n');
    expect(u.complete).toBe(false);
    u.end();
    expect(u.complete).toBe(true);
    expect(u.tokens).toBe(9);
  });

  test("openai Responses API: usage inside response.completed counts", () => {
    const { u, hidden } = feed(
      "openai",
      'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"hi"}\n\n' +
        'event: response.completed\ndata: {"type":"response.completed","response":{"id":"r1","usage":{"input_tokens":9,"output_tokens":3,"total_tokens":12}}}\n\n',
    );
    expect(u.complete).toBe(true);
    expect(u.tokens).toBe(12);
    expect(hidden).toHaveLength(0);
  });

  test("openai: a stream without usage is not complete", () => {
    const { u } = feed(
      "openai",
      'data: {"choices":[{"delta":{"content":"x"}}]}\n\ndata: [DONE]\n\n',
    );
    expect(u.complete).toBe(false);
    expect(u.tokens).toBeNull();
  });

  test("anthropic: message_start counts, message_delta's cumulative output replaces it", () => {
    const { u, hidden } = feed(
      "anthropic",
      'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":11,"cache_creation_input_tokens":3,"cache_read_input_tokens":2,"output_tokens":1}}}\n\n' +
        'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"usage"}}\n\n' +
        'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":5}}\n\n',
    );
    expect(hidden).toHaveLength(0);
    expect(u.complete).toBe(true);
    expect(u.tokens).toBe(21);
  });

  test("anthropic: cut before message_delta reports partial usage, not complete", () => {
    const { u } = feed(
      "anthropic",
      'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":11,"output_tokens":1}}}\n\n',
    );
    expect(u.complete).toBe(false);
    expect(u.tokens).toBe(12);
    // The estimate's input side: input and cache counts, not message_start's output_tokens.
    expect(u.inputTokens).toBe(11);
    expect(u.contentEvents).toBe(0);
  });
});

describe("StreamUsage: pieces of the answer, for an estimate", () => {
  const cases: Array<[string, "openai" | "anthropic", string, number]> = [
    [
      "openai chat: every chunk but [DONE]",
      "openai",
      'data: {"choices":[{"delta":{"role":"assistant","content":"a"}}]}\n\n' +
        'data: {"choices":[{"delta":{"content":"b"}}]}\n\n' +
        'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\n' +
        "data: [DONE]\n\n",
      3,
    ],
    [
      "anthropic: content_block_delta only, no message_start, ping, block start or stop",
      "anthropic",
      'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":11,"output_tokens":1}}}\n\n' +
        'event: ping\ndata: {"type":"ping"}\n\n' +
        'event: content_block_start\ndata: {"type":"content_block_start","index":0}\n\n' +
        'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"a"}}\n\n' +
        'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"b"}}\n\n' +
        'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n' +
        'event: message_stop\ndata: {"type":"message_stop"}\n\n',
      2,
    ],
    [
      "openai Responses API: the .delta events only",
      "openai",
      'event: response.created\ndata: {"type":"response.created","response":{"usage":null}}\n\n' +
        'event: response.output_item.added\ndata: {"type":"response.output_item.added"}\n\n' +
        'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"a"}\n\n' +
        'event: response.output_text.done\ndata: {"type":"response.output_text.done"}\n\n',
      1,
    ],
  ];
  for (const [name, dialect, text, want] of cases) {
    test(name, () => {
      const { u } = feed(dialect, text);
      expect(u.complete).toBe(false);
      expect(u.contentEvents).toBe(want);
    });
  }
});
