/**
 * Every fallback charge, end to end: a stream whose usage never comes is
 * charged the README's estimate ("the input tokens the upstream did report,
 * else request bytes / 4, plus one token per streamed piece of the answer"),
 * marked `"estimated":true` in its log line. Covered: a stream without usage,
 * a stream cut by the idle bound, a stream the client abandons that is still
 * running at the drain bound, and streams still running at the shutdown
 * timeout.
 *
 * The mock sends one content chunk, then pauses far longer than any bound
 * here, so what the gateway has read when a bound ends is exact. OpenAI
 * chunks: the first content chunk; Anthropic: message_start (11 input + 3 + 2
 * cache tokens), ping, content_block_start, then one content_block_delta.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import {
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  mockHeaders,
  newTag,
  startGateway,
  waitFor,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

const chat = { model: "glm-4.7", messages: [{ role: "user" as const, content: "hello" }] };
const message = { ...chat, max_tokens: 32 };
/** What message_start reports as input: 11 input, 3 cache creation, 2 cache read. */
const ANTHROPIC_INPUT = 11 + 3 + 2;
const IDLE_MS = 1500;
const DRAIN_MS = 800;
const SHUTDOWN_MS = 700;
/** Longer than every bound above, by far. */
const PAUSE_MS = 20_000;

let mock: MockUpstream;
let gw: GatewayProcess;

beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startGateway({
    mock,
    env: {
      UPSTREAM_IDLE_TIMEOUT_MS: String(IDLE_MS),
      STREAM_DRAIN_MS: String(DRAIN_MS),
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_MS),
    },
  });
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await gw?.close();
  await mock?.stop();
}, HOOK_TIMEOUT_MS);

/** The request's log line, once the gateway has written it. */
function logLine(g: GatewayProcess, response: Response): Promise<Record<string, unknown>> {
  const id = response.headers.get("x-request-id");
  expect(id).toBeTruthy();
  return waitFor(
    `the log line of request ${id}`,
    () => g.logLines().find((l) => l.reqId === id && l.msg === "request"),
    5000,
  );
}

/** Request bytes / 4, rounded up, of the body the upstream got (tagged `tag`). */
function bytesEstimate(tag: string): number {
  const sent = mock.requests.find((r) => r.headers["x-test-tag"] === tag);
  if (!sent) throw new Error(`no upstream request tagged ${tag}`);
  expect(sent.bodyBytes).toBeGreaterThan(40);
  return Math.ceil(sent.bodyBytes / 4);
}

function isAbortOrCut(err: unknown): boolean {
  return (
    err instanceof OpenAI.APIError ||
    err instanceof Anthropic.APIError ||
    (err instanceof Error && /abort|terminated|socket|closed|network/i.test(err.message))
  );
}

describe("a stream without usage", () => {
  test("OpenAI: request bytes / 4 plus every chunk but [DONE], marked estimated", async () => {
    const k = await gw.createKey({ name: "no-usage-openai", limit: 100_000 });
    const tag = newTag();
    const { data: stream, response } = await gw
      .openai(k.key, { maxRetries: 0 })
      .chat.completions.create(
        { ...chat, stream: true },
        { headers: mockHeaders({ noUsage: true, completionTokens: 4, tag }) },
      )
      .withResponse();
    let text = "";
    for await (const c of stream) text += c.choices[0]?.delta.content ?? "";
    expect(text).toBe("tok0 tok1 tok2 tok3 ");
    // Four content chunks and the closing one with finish_reason.
    const tokens = bytesEstimate(tag) + 5;
    const line = await logLine(gw, response);
    expect(line).toMatchObject({ tokens, estimated: true, stream: true });
    expect(line.abandoned).toBeUndefined();
    expect(line.broken).toBeUndefined();
    await gw.statsWhen(k.key, { tokens, requests: 1 }, 3000);
  });

  test("Anthropic: request bytes / 4 plus one per content_block_delta, marked estimated", async () => {
    const k = await gw.createKey({ name: "no-usage-anthropic", limit: 100_000 });
    const tag = newTag();
    const { data: stream, response } = await gw
      .anthropic(k.key, { maxRetries: 0 })
      .messages.create(
        { ...message, stream: true },
        { headers: mockHeaders({ noUsage: true, completionTokens: 4, tag }) },
      )
      .withResponse();
    let deltas = 0;
    for await (const ev of stream) if (ev.type === "content_block_delta") deltas++;
    expect(deltas).toBe(4);
    // No usage at all: message_start, ping, block start and stop are no tokens.
    const tokens = bytesEstimate(tag) + 4;
    const line = await logLine(gw, response);
    expect(line).toMatchObject({ tokens, estimated: true, stream: true });
    await gw.statsWhen(k.key, { tokens, requests: 1 }, 3000);
  });
});

describe("a stream cut by the idle bound (UPSTREAM_IDLE_TIMEOUT_MS)", () => {
  test("Anthropic: the reported input plus the one delta read, marked estimated and broken", async () => {
    const k = await gw.createKey({ name: "idle-anthropic", limit: 100_000 });
    const { data: stream, response } = await gw
      .anthropic(k.key, { maxRetries: 0 })
      .messages.create(
        { ...message, stream: true },
        { headers: mockHeaders({ completionTokens: 5, pauseMs: PAUSE_MS }) },
      )
      .withResponse();
    const started = performance.now();
    let deltas = 0;
    let cut: unknown;
    try {
      for await (const ev of stream) if (ev.type === "content_block_delta") deltas++;
    } catch (err) {
      cut = err;
    }
    expect(deltas).toBe(1);
    expect(isAbortOrCut(cut)).toBe(true);
    // Cut by the idle bound, long before the upstream's pause would end.
    expect(performance.now() - started).toBeLessThan(PAUSE_MS / 2);
    const tokens = ANTHROPIC_INPUT + 1;
    const line = await logLine(gw, response);
    expect(line).toMatchObject({ tokens, estimated: true, broken: true });
    await gw.statsWhen(k.key, { tokens, requests: 1 }, 3000);
  });

  test("OpenAI: request bytes / 4 plus the one chunk read, marked estimated and broken", async () => {
    const k = await gw.createKey({ name: "idle-openai", limit: 100_000 });
    const tag = newTag();
    const { data: stream, response } = await gw
      .openai(k.key, { maxRetries: 0 })
      .chat.completions.create(
        { ...chat, stream: true },
        { headers: mockHeaders({ completionTokens: 5, pauseMs: PAUSE_MS, tag }) },
      )
      .withResponse();
    let text = "";
    let cut: unknown;
    try {
      for await (const c of stream) text += c.choices[0]?.delta.content ?? "";
    } catch (err) {
      cut = err;
    }
    expect(text).toBe("tok0 ");
    expect(isAbortOrCut(cut)).toBe(true);
    const tokens = bytesEstimate(tag) + 1;
    const line = await logLine(gw, response);
    expect(line).toMatchObject({ tokens, estimated: true, broken: true });
    await gw.statsWhen(k.key, { tokens, requests: 1 }, 3000);
  });
});

describe("a stream the client abandons, still running at the drain bound (STREAM_DRAIN_MS)", () => {
  test("OpenAI: request bytes / 4 plus the one chunk read, marked estimated and abandoned", async () => {
    const k = await gw.createKey({ name: "drain-openai", limit: 100_000 });
    const tag = newTag();
    const ac = new AbortController();
    const { data: stream, response } = await gw
      .openai(k.key, { maxRetries: 0 })
      .chat.completions.create(
        { ...chat, stream: true },
        {
          headers: mockHeaders({ completionTokens: 5, pauseMs: PAUSE_MS, tag }),
          signal: ac.signal,
        },
      )
      .withResponse();
    let seen = 0;
    try {
      for await (const c of stream) {
        if (c.choices[0]?.delta.content) {
          seen++;
          ac.abort();
        }
      }
    } catch (err) {
      if (!isAbortOrCut(err)) throw err;
    }
    expect(seen).toBe(1);
    const tokens = bytesEstimate(tag) + 1;
    const line = await logLine(gw, response);
    expect(line).toMatchObject({ tokens, estimated: true, abandoned: true });
    // Given up at the drain bound, well before the idle bound or the upstream's pause.
    expect(line.ms as number).toBeLessThan(IDLE_MS + 1000);
    await gw.statsWhen(k.key, { tokens, requests: 1 }, 3000);
  });

  test("Anthropic: the reported input plus the one delta read, marked estimated and abandoned", async () => {
    const k = await gw.createKey({ name: "drain-anthropic", limit: 100_000 });
    const ac = new AbortController();
    const { data: stream, response } = await gw
      .anthropic(k.key, { maxRetries: 0 })
      .messages.create(
        { ...message, stream: true },
        { headers: mockHeaders({ completionTokens: 5, pauseMs: PAUSE_MS }), signal: ac.signal },
      )
      .withResponse();
    let deltas = 0;
    try {
      for await (const ev of stream) {
        if (ev.type === "content_block_delta") {
          deltas++;
          ac.abort();
        }
      }
    } catch (err) {
      if (!isAbortOrCut(err)) throw err;
    }
    expect(deltas).toBe(1);
    const tokens = ANTHROPIC_INPUT + 1;
    const line = await logLine(gw, response);
    expect(line).toMatchObject({ tokens, estimated: true, abandoned: true });
    await gw.statsWhen(k.key, { tokens, requests: 1 }, 3000);
  });
});

// Last: it stops the gateway (and starts it again to read what was kept).
describe("streams still running at the shutdown timeout (SHUTDOWN_TIMEOUT_MS)", () => {
  test("both dialects: charged what was read, marked estimated, kept across the restart", async () => {
    const ko = await gw.createKey({ name: "shutdown-openai", limit: 100_000 });
    const ka = await gw.createKey({ name: "shutdown-anthropic", limit: 100_000 });
    const tag = newTag();
    const slow = (t?: string) => ({
      headers: mockHeaders({ completionTokens: 5, pauseMs: PAUSE_MS, tag: t }),
    });
    const openai = await gw
      .openai(ko.key, { maxRetries: 0 })
      .chat.completions.create({ ...chat, stream: true }, slow(tag))
      .withResponse();
    const anthropic = await gw
      .anthropic(ka.key, { maxRetries: 0 })
      .messages.create({ ...message, stream: true }, slow())
      .withResponse();
    // Read each to its first piece of the answer, then stop the gateway.
    const openaiIt = openai.data[Symbol.asyncIterator]();
    const first = await openaiIt.next();
    expect(first.value?.choices[0]?.delta.content).toBe("tok0 ");
    const anthropicIt = anthropic.data[Symbol.asyncIterator]();
    for (;;) {
      const ev = await anthropicIt.next();
      if (ev.done || ev.value.type === "content_block_delta") break;
    }
    const lines = [logLine(gw, openai.response), logLine(gw, anthropic.response)];
    const started = performance.now();
    const drainRest = async (it: AsyncIterator<unknown>) => {
      try {
        while (!(await it.next()).done) {}
      } catch {
        // cut by the gateway going away: expected
      }
    };
    const rest = Promise.all([drainRest(openaiIt), drainRest(anthropicIt)]);
    expect(await gw.stop()).toBe(0);
    // It waited for the shutdown timeout, not for the upstream's pause.
    expect(performance.now() - started).toBeLessThan(PAUSE_MS / 2);
    await rest;

    const openaiTokens = bytesEstimate(tag) + 1;
    const anthropicTokens = ANTHROPIC_INPUT + 1;
    const [lo, la] = await Promise.all(lines);
    expect(lo).toMatchObject({ tokens: openaiTokens, estimated: true });
    expect(la).toMatchObject({ tokens: anthropicTokens, estimated: true });

    await gw.start();
    await gw.statsWhen(ko.key, { tokens: openaiTokens, requests: 1 }, 3000);
    await gw.statsWhen(ka.key, { tokens: anthropicTokens, requests: 1 }, 3000);
  });
});

describe("logs", () => {
  test("no client key and never the master key appear in this file's logs", () => {
    const all = gw.stdout + gw.stderr;
    expect(gw.logLines().length).toBeGreaterThan(8);
    expect(all).not.toContain(gw.masterKey);
    expect(gw.secrets.length).toBeGreaterThan(0);
    for (const secret of gw.secrets) expect(all).not.toContain(secret);
  });
});

test("the secret sweep: every gateway's log is non-empty and holds no master, admin or client key", () => {
  expectNoSecretsInLogs();
});
