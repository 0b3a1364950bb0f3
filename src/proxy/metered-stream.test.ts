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
  let force: (() => void) | undefined;
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
    onForceable: (f) => {
      force = f;
    },
  });
  return {
    stream,
    done,
    calls: () => calls,
    idled: () => idled,
    usage: () => byKind,
    force: () => force?.(),
  };
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
      const stream = meteredStream({
        upstream: streamOf(sent),
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

  test("shutdown's force charges what is known at once, and only once, however the stream goes on", async () => {
    // The upstream falls silent after the first piece of the answer.
    const silent = run(ANTHROPIC.slice(0, 2), { dialect: "anthropic", end: "hang", idleMs: 100 });
    const reader = silent.stream.getReader();
    await reader.read();
    await reader.read();
    silent.force();
    // message_start said 11 input + 3 + 2 cache; one content_block_delta arrived.
    const estimate = { tokens: 16 + 1, estimated: true, abandoned: false, broken: true };
    expect(await silent.done).toEqual(estimate);
    // Settled: the idle limit, long passed, no longer cuts it.
    await Bun.sleep(250);
    expect(silent.idled()).toBe(0);
    expect(silent.calls()).toBe(1);

    // The upstream goes on to report its usage: no second charge.
    const going = run(ANTHROPIC, { dialect: "anthropic", gapMs: 20 });
    const rest = going.stream.getReader();
    await rest.read();
    await rest.read();
    going.force();
    expect(await going.done).toEqual(estimate);
    while (!(await rest.read()).done) {}
    expect(going.calls()).toBe(1);
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

/** An upstream that hands out `chunks`, these very objects, one per read. */
function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      const next = chunks[i++];
      if (next) c.enqueue(next);
      else c.close();
    },
  });
}

/** Runs `chunks` (each sent as a fresh copy) through a meteredStream to its end. */
async function meter(
  chunks: Uint8Array[],
  dialect: "openai" | "anthropic",
  hide: boolean,
): Promise<{ bytes: Uint8Array; outcome: StreamOutcome; usage: TokenUsage; calls: number }> {
  let calls = 0;
  let outcome: StreamOutcome | undefined;
  let usage: TokenUsage | undefined;
  const stream = meteredStream({
    upstream: streamOf(chunks.map((c) => c.slice())),
    idleMs: 5000,
    onIdle: () => {},
    dialect,
    hideUsageChunk: hide,
    drainMs: 5000,
    requestBytes: 400,
    onDone: (o, u) => {
      calls++;
      outcome = o;
      usage = u;
    },
  });
  const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  if (!outcome || !usage) throw new Error("onDone was not called");
  return { bytes, outcome, usage, calls };
}

/** The stream cut in two at every byte offset, plus one byte at a time. */
function everySplit(bytes: Uint8Array): Uint8Array[][] {
  const ways: Uint8Array[][] = [Array.from(bytes, (_, i) => bytes.subarray(i, i + 1))];
  for (let i = 1; i < bytes.length; i++) ways.push([bytes.subarray(0, i), bytes.subarray(i)]);
  return ways;
}

describe("meteredStream on bytes: however the upstream cuts its stream", () => {
  const openai = [
    'data: {"choices":[{"delta":{"content":"é✓😀"}}],"usage":null}\n\n',
    ": keep-alive\n\n",
    'data: {"choices":[{"delta":{"content":"b"}}],"usage":null}\n\n',
    'data: {"model":"glm-é","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":6,"total_tokens":16,"prompt_tokens_details":{"cached_tokens":4}}}\n\n',
    "data: [DONE]\n\n",
  ];
  const anthropic = [
    ANTHROPIC[0] ?? "",
    'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"é✓😀"}}\n\n',
    ...ANTHROPIC.slice(1),
  ];
  const streams: Array<[string, "openai" | "anthropic", string[], number]> = [
    ["openai", "openai", openai, 3],
    ["openai, CRLF", "openai", openai.map((e) => e.replaceAll("\n", "\r\n")), 3],
    ["anthropic", "anthropic", anthropic, -1],
    ["anthropic, CRLF", "anthropic", anthropic.map((e) => e.replaceAll("\n", "\r\n")), -1],
    ["anthropic, CR", "anthropic", anthropic.map((e) => e.replaceAll("\n", "\r")), -1],
  ];
  for (const [name, dialect, events, usageAt] of streams) {
    test(`${name}: the same usage and the same bytes at every split`, async () => {
      const bytes = enc.encode(events.join(""));
      const whole = await meter([bytes], dialect, false);
      expect(whole.outcome.estimated).toBe(false);
      const hidden = enc.encode(events.filter((_, i) => i !== usageAt).join(""));
      for (const chunks of everySplit(bytes)) {
        const passed = await meter(chunks, dialect, false);
        expect(passed.bytes).toEqual(bytes);
        expect([passed.outcome, passed.usage, passed.calls]).toEqual([
          whole.outcome,
          whole.usage,
          1,
        ]);
        if (dialect !== "openai") continue;
        const hiding = await meter(chunks, dialect, true);
        expect(hiding.bytes).toEqual(hidden);
        expect([hiding.outcome, hiding.usage]).toEqual([whole.outcome, whole.usage]);
      }
    });
  }

  test("a stream without usage gets the same estimate at every split", async () => {
    const events = [openai[0], openai[1], openai[2], "data: [DONE]\n\n"].join("");
    const bytes = enc.encode(events);
    for (const chunks of everySplit(bytes)) {
      const { outcome, usage } = await meter(chunks, "openai", true);
      expect(outcome).toEqual({
        tokens: 100 + 2,
        estimated: true,
        abandoned: false,
        broken: false,
      });
      expect(usage.output).toBe(102);
    }
  });

  test("the hidden usage chunk is cut out exactly, wherever it lies in a chunk", async () => {
    const usageChunk = openai[3] ?? "";
    const before = `${openai[0]}${openai[1]}`;
    const after = openai[4] ?? "";
    const { bytes, outcome, usage } = await meter(
      [enc.encode(before + usageChunk + after)],
      "openai",
      true,
    );
    expect(bytes).toEqual(enc.encode(before + after));
    expect(outcome.tokens).toBe(16);
    expect(usage).toEqual({ input: 6, cacheRead: 4, cacheWrite: 0, output: 6 });
    // Two usage chunks in one read (continuous usage): both go, the last counts.
    const twice = usageChunk.replace("16", "15").replace(":6", ":5");
    const two = await meter([enc.encode(before + twice + usageChunk + after)], "openai", true);
    expect(two.bytes).toEqual(enc.encode(before + after));
    expect(two.outcome.tokens).toBe(16);
  });
});
