import { describe, expect, test } from "bun:test";
import type { TokenUsage } from "../models/token-usage.ts";
import { estimateTokens, meteredStream, type StreamOutcome } from "./metered-stream.ts";

const enc = new TextEncoder();

/** An upstream body that yields `chunks` with `gapMs` between them, then ends (or hangs or fails). */
function upstream(
  chunks: string[],
  opts: { gapMs?: number; end?: "close" | "hang" | "error" } = {},
  handle: { abort?: () => void } = {},
) {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    start(c) {
      // What aborting the upstream fetch does to its body: the pending read fails.
      handle.abort = () => c.error(new Error("The operation was aborted."));
    },
    async pull(c) {
      if (opts.gapMs && i > 0) await Bun.sleep(opts.gapMs);
      if (i < chunks.length) {
        c.enqueue(enc.encode(chunks[i++]));
        return;
      }
      if (opts.end === "hang") return new Promise(() => {});
      if (opts.end === "error") c.error(new Error("connection reset"));
      else c.close();
    },
  });
}

function run(
  chunks: string[],
  opts: {
    dialect?: "openai" | "anthropic";
    hide?: boolean;
    gapMs?: number;
    end?: "close" | "hang" | "error";
    drainMs?: number;
    idleMs?: number;
  } = {},
) {
  let resolve: (o: StreamOutcome) => void = () => {};
  const done = new Promise<StreamOutcome>((r) => {
    resolve = r;
  });
  let calls = 0;
  let byKind: TokenUsage | undefined;
  const handle: { abort?: () => void } = {};
  let idled = 0;
  const stream = meteredStream({
    upstream: upstream(chunks, opts, handle),
    idleMs: opts.idleMs ?? 5000,
    onIdle: () => {
      idled++;
      handle.abort?.();
    },
    dialect: opts.dialect ?? "openai",
    hideUsageChunk: opts.hide ?? false,
    drainMs: opts.drainMs ?? 5000,
    requestBytes: 400,
    onDone: (o, u) => {
      calls++;
      byKind = u;
      resolve(o);
    },
  });
  return { stream, done, calls: () => calls, idled: () => idled, usage: () => byKind };
}

const OPENAI = [
  'data: {"choices":[{"delta":{"content":"a"}}],"usage":null}\n\n',
  'data: {"choices":[{"delta":{"content":"b"}}],"usage":null}\n\n',
  'data: {"choices":[],"usage":{"total_tokens":16}}\n\n',
  "data: [DONE]\n\n",
];

const ANTHROPIC = [
  'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":11,"cache_creation_input_tokens":3,"cache_read_input_tokens":2,"output_tokens":1}}}\n\n',
  'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"x"}}\n\n',
  'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":5}}\n\n',
  'event: message_stop\ndata: {"type":"message_stop"}\n\n',
];

describe("meteredStream", () => {
  test("passes bytes through untouched and charges reported usage once", async () => {
    const r = run(ANTHROPIC, { dialect: "anthropic" });
    expect(await new Response(r.stream).text()).toBe(ANTHROPIC.join(""));
    expect(await r.done).toEqual({ tokens: 21, estimated: false, abandoned: false, broken: false });
    expect(r.calls()).toBe(1);
  });

  test("hides the usage-only chunk from a client that did not ask for it", async () => {
    // Split mid-event to show whole events are what gets forwarded.
    const text = OPENAI.join("");
    const r = run([text.slice(0, 30), text.slice(30, 100), text.slice(100)], { hide: true });
    const out = await new Response(r.stream).text();
    expect(out).toBe([OPENAI[0], OPENAI[1], OPENAI[3]].join(""));
    expect((await r.done).tokens).toBe(16);
  });

  test("hiding the usage chunk: every way of cutting the stream gives the same bytes, and whole chunks go on as they came", async () => {
    const multi = 'data: {"choices":[{"delta":{"content":"é✓"}}],"usage":null}\n\n';
    const events = [multi, ...OPENAI];
    const bytes = enc.encode(events.join(""));
    const expected = [multi, OPENAI[0], OPENAI[1], OPENAI[3]].join("");
    const cuts: Record<string, number[]> = {
      "one chunk per event": [],
      "inside the two-byte character": [bytes.indexOf(0xc3) + 1],
      "inside the three-byte character": [bytes.indexOf(0xe2) + 1, bytes.indexOf(0xe2) + 2],
      "between CR and LF": [],
      "every byte": Array.from({ length: bytes.length - 1 }, (_, i) => i + 1),
    };
    for (const [name, at] of Object.entries(cuts)) {
      let chunks: Uint8Array[];
      if (name === "one chunk per event") chunks = events.map((e) => enc.encode(e));
      else if (name === "between CR and LF") {
        const crlf = enc.encode(events.join("").replaceAll("\n", "\r\n"));
        const cr = crlf.indexOf(0x0d);
        chunks = [crlf.subarray(0, cr + 1), crlf.subarray(cr + 1)];
      } else {
        const points = [0, ...at, bytes.length];
        chunks = points.slice(1).map((end, i) => bytes.subarray(points[i], end));
      }
      const sent = chunks.map((c) => c.slice());
      let i = 0;
      const stream = meteredStream({
        upstream: new ReadableStream<Uint8Array>({
          pull(c) {
            const next = sent[i++];
            if (next) c.enqueue(next);
            else c.close();
          },
        }),
        idleMs: 5000,
        onIdle: () => {},
        dialect: "openai",
        hideUsageChunk: true,
        drainMs: 5000,
        requestBytes: 400,
        onDone: () => {},
      });
      const got: Uint8Array[] = [];
      for await (const c of stream) got.push(c);
      const text = new TextDecoder().decode(Buffer.concat(got));
      const want = name === "between CR and LF" ? expected.replaceAll("\n", "\r\n") : expected;
      expect({ name, text }).toEqual({ name, text: want });
      if (name === "one chunk per event") {
        // Whole events without the usage chunk: the very bytes received.
        expect(got.length).toBe(4);
        expect(got.every((c) => sent.some((s) => s === c))).toBe(true);
      }
    }
  });

  test("a leading byte-order mark is dropped when hiding the usage chunk, as before", async () => {
    const r = run([`\uFEFF${OPENAI[0]}`, ...OPENAI.slice(1)], { hide: true });
    // Compared as bytes: a text decoder would drop the mark itself.
    const out = new Uint8Array(await new Response(r.stream).arrayBuffer());
    expect(out).toEqual(enc.encode([OPENAI[0], OPENAI[1], OPENAI[3]].join("")));
  });

  test("keeps the usage chunk for a client that asked", async () => {
    const r = run(OPENAI, { hide: false });
    expect(await new Response(r.stream).text()).toBe(OPENAI.join(""));
    expect((await r.done).tokens).toBe(16);
  });

  test("a client that leaves early is still charged what the upstream reports", async () => {
    const r = run(OPENAI, { gapMs: 30 });
    const reader = r.stream.getReader();
    await reader.read();
    await reader.cancel();
    expect(await r.done).toEqual({ tokens: 16, estimated: false, abandoned: true, broken: false });
  });

  test("an abandoned stream that never reports usage is charged an estimate when the drain bound ends", async () => {
    const r = run(OPENAI.slice(0, 2), { end: "hang", drainMs: 100 });
    const reader = r.stream.getReader();
    await reader.read();
    const started = performance.now();
    await reader.cancel();
    const o = await r.done;
    expect(performance.now() - started).toBeLessThan(2000);
    // No usage came: 400 request bytes / 4, plus the 2 content chunks read.
    expect(o).toEqual({
      tokens: 100 + 2,
      estimated: true,
      abandoned: true,
      broken: true,
    });
  });

  test("an upstream silent for longer than the idle limit is cut and charged what it said", async () => {
    const r = run(ANTHROPIC.slice(0, 2), { dialect: "anthropic", end: "hang", idleMs: 100 });
    const started = performance.now();
    await expect(new Response(r.stream).text()).rejects.toThrow();
    expect(performance.now() - started).toBeLessThan(2000);
    expect(r.idled()).toBe(1);
    // message_start reported 11 input + 3 + 2 cache; one content_block_delta arrived.
    expect(await r.done).toEqual({
      tokens: 16 + 1,
      estimated: true,
      abandoned: false,
      broken: true,
    });
  });

  test("a stream that ends without usage is charged an estimate", async () => {
    const r = run(OPENAI.slice(0, 2).concat(["data: [DONE]\n\n"]));
    await new Response(r.stream).text();
    // 400 request bytes / 4, plus 2 content chunks ([DONE] is no token).
    expect(await r.done).toEqual({
      tokens: 100 + 2,
      estimated: true,
      abandoned: false,
      broken: false,
    });
  });

  test("an estimate keeps the input kinds the upstream reported; only the rest counts as output", async () => {
    const cut = run(ANTHROPIC.slice(0, 2), { dialect: "anthropic", end: "error" });
    await expect(new Response(cut.stream).text()).rejects.toThrow();
    await cut.done;
    // message_start: 11 input, 2 cache reads, 3 cache writes; one piece of the answer.
    expect(cut.usage()).toEqual({ input: 11, cacheRead: 2, cacheWrite: 3, output: 1 });
    // Nothing reported (OpenAI before its final chunk): all of it counts as output.
    const bare = run(OPENAI.slice(0, 2).concat(["data: [DONE]\n\n"]));
    await new Response(bare.stream).text();
    await bare.done;
    expect(bare.usage()).toEqual({ input: 0, cacheRead: 0, cacheWrite: 0, output: 102 });
  });

  test("an upstream that breaks mid-stream errors the client's stream and charges partial usage", async () => {
    const r = run(ANTHROPIC.slice(0, 2), { dialect: "anthropic", end: "error" });
    await expect(new Response(r.stream).text()).rejects.toThrow();
    // message_start said 11 input + 3 + 2 cache; one content_block_delta arrived.
    expect(await r.done).toEqual({
      tokens: 16 + 1,
      estimated: true,
      abandoned: false,
      broken: true,
    });
  });
});

describe("estimateTokens", () => {
  test("the reported input, else request bytes / 4 rounded up, plus one per piece of the answer", () => {
    expect(estimateTokens(401, 0)).toBe(101);
    expect(estimateTokens(400, 7)).toBe(107);
    expect(estimateTokens(400, 7, 16)).toBe(23);
    expect(estimateTokens(400, 0, 0)).toBe(0);
  });
});
