/**
 * Streams that take their time: a model thinking longer than Bun's default
 * idle timeout, a client that walks away mid-stream, a gateway asked to stop
 * while a stream is still running.
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
/** Longer than Bun.serve's default idleTimeout of 10 s. */
const THINKING_MS = 11_500;

let mock: MockUpstream;
let gw: GatewayProcess;

/**
 * The long pause runs against its own mock and gateway, started with the file
 * and checked by its test after the abandoned-stream tests, so its 11.5 s
 * overlap them instead of adding to the suite's time (and its tokens do not
 * disturb their counts of what the mock reported). The shutdown test comes
 * after it: a gateway that cut connections on SIGTERM once made this test
 * process's concurrent fetches to the other gateway fail too, so they must
 * not overlap or one bug would show up as two.
 */
let pauseMock: MockUpstream;
let pauseGw: GatewayProcess;
let pauseRun: Promise<PauseOutcome>;

interface PauseOutcome {
  openai: { at: number[]; text: string; finish: string | null | undefined };
  anthropic: { at: number[]; final: Anthropic.Message };
  keys: { openai: string; anthropic: string };
}

beforeAll(async () => {
  pauseMock = await startMockUpstream();
  pauseGw = await startGateway({ mock: pauseMock });
  const ka = await pauseGw.createKey({ name: "pause-openai", limit: 1000 });
  const kb = await pauseGw.createKey({ name: "pause-anthropic", limit: 1000 });
  pauseRun = longPause(pauseGw, ka.key, kb.key);
  // Observed by its test; keep a failure here from surfacing as an unhandled rejection first.
  pauseRun.catch(() => {});
  mock = await startMockUpstream();
  gw = await startGateway({ mock });
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await gw?.close();
  await mock?.stop();
  await pauseGw?.close();
  await pauseMock?.stop();
}, HOOK_TIMEOUT_MS);

function isAbort(err: unknown): boolean {
  return (
    err instanceof OpenAI.APIUserAbortError ||
    err instanceof Anthropic.APIUserAbortError ||
    (err instanceof Error && err.name === "AbortError")
  );
}

/** One stream per dialect, each pausing THINKING_MS after its first token. */
async function longPause(
  g: GatewayProcess,
  openaiKey: string,
  anthropicKey: string,
): Promise<PauseOutcome> {
  const slow = { headers: mockHeaders({ completionTokens: 3, pauseMs: THINKING_MS }) };
  const openaiRun = (async () => {
    const stream = await g
      .openai(openaiKey, { maxRetries: 0 })
      .chat.completions.create({ ...chat, stream: true }, slow);
    const at: number[] = [];
    let text = "";
    let finish: string | null | undefined;
    for await (const c of stream) {
      const piece = c.choices[0]?.delta.content;
      if (piece) {
        at.push(performance.now());
        text += piece;
      }
      finish ??= c.choices[0]?.finish_reason;
    }
    return { at, text, finish };
  })();
  const anthropicRun = (async () => {
    const stream = g.anthropic(anthropicKey, { maxRetries: 0 }).messages.stream(message, slow);
    const at: number[] = [];
    stream.on("text", () => at.push(performance.now()));
    const final = await stream.finalMessage();
    return { at, final };
  })();
  const [o, a] = await Promise.all([openaiRun, anthropicRun]);
  return { openai: o, anthropic: a, keys: { openai: openaiKey, anthropic: anthropicKey } };
}

describe("a stream the client abandons", () => {
  test("OpenAI: still charged in full, because the gateway reads the upstream to its usage", async () => {
    const k = await gw.createKey({ name: "abandon-openai", limit: 1000 });
    const before = mock.tokensReported;
    const ac = new AbortController();
    const stream = await gw.openai(k.key, { maxRetries: 0 }).chat.completions.create(
      { ...chat, stream: true },
      {
        headers: mockHeaders({ promptTokens: 13, completionTokens: 10, chunkDelayMs: 150 }),
        signal: ac.signal,
      },
    );
    let seen = 0;
    try {
      for await (const c of stream) {
        if (c.choices[0]?.delta.content) {
          seen++;
          ac.abort();
        }
      }
    } catch (err) {
      if (!isAbort(err)) throw err;
    }
    expect(seen).toBe(1);
    // The upstream takes ~1.7 s to reach its usage chunk; the client left long before.
    const s = await gw.statsWhen(k.key, { tokens: 23, requests: 1 }, 6000);
    expect(s.current_usage.tokens_used_in_current_window).toBe(23);
    expect(mock.tokensReported - before).toBe(23);
  });

  test("Anthropic: still charged in full (input, output and cache tokens)", async () => {
    const k = await gw.createKey({ name: "abandon-anthropic", limit: 1000 });
    const before = mock.tokensReported;
    const ac = new AbortController();
    const stream = await gw.anthropic(k.key, { maxRetries: 0 }).messages.create(
      { ...message, stream: true },
      {
        headers: mockHeaders({ promptTokens: 13, completionTokens: 10, chunkDelayMs: 150 }),
        signal: ac.signal,
      },
    );
    let deltas = 0;
    try {
      for await (const ev of stream) {
        if (ev.type === "content_block_delta") {
          deltas++;
          ac.abort();
        }
      }
    } catch (err) {
      if (!isAbort(err)) throw err;
    }
    expect(deltas).toBe(1);
    await gw.statsWhen(k.key, { tokens: 13 + 10 + 5, requests: 1 }, 6000);
    expect(mock.tokensReported - before).toBe(28);
  });
});

describe("a non-streamed request the client abandons", () => {
  test("is still charged: the upstream call goes on without the client", async () => {
    const k = await gw.createKey({ name: "abandon-plain", limit: 1000 });
    const tag = newTag();
    const ac = new AbortController();
    const call = gw
      .openai(k.key, { maxRetries: 0 })
      .chat.completions.create(chat, {
        headers: mockHeaders({ delayMs: 1000, promptTokens: 40, tag }),
        signal: ac.signal,
      })
      .catch((err: unknown) => err);
    await waitFor("the request to reach the upstream", () =>
      mock.requests.some((r) => r.headers["x-test-tag"] === tag) ? true : undefined,
    );
    ac.abort();
    expect(isAbort(await call)).toBe(true);
    await gw.statsWhen(k.key, { tokens: 45, requests: 1 }, 4000);
  });
});

describe("a long thinking pause (longer than Bun's 10 s idle timeout)", () => {
  test("does not cut the stream, on either dialect", async () => {
    const { openai: o, anthropic: a, keys } = await pauseRun;
    expect(o.text).toBe("tok0 tok1 tok2 ");
    expect(o.finish).toBe("stop");
    // The pause really happened between the first and second token.
    expect((o.at[1] ?? 0) - (o.at[0] ?? 0)).toBeGreaterThan(THINKING_MS - 500);
    expect(a.at).toHaveLength(3);
    expect((a.at[1] ?? 0) - (a.at[0] ?? 0)).toBeGreaterThan(THINKING_MS - 500);
    expect(a.final.stop_reason).toBe("end_turn");
    expect(a.final.usage.output_tokens).toBe(3);

    await pauseGw.statsWhen(keys.openai, { tokens: 11 + 3, requests: 1 }, 1000);
    await pauseGw.statsWhen(keys.anthropic, { tokens: 11 + 3 + 5, requests: 1 }, 1000);
  });
});

describe("graceful shutdown", () => {
  test("SIGTERM during a slow stream and a slow answer: both complete, exit 0, usage kept", async () => {
    const k = await gw.createKey({ name: "shutdown-stream", limit: "1M" });
    const client = gw.openai(k.key, { maxRetries: 0 });
    // A non-streamed answer the upstream takes 1.5 s to give, in flight at the gateway.
    const tag = newTag();
    const slowAnswer = client.chat.completions
      .create(chat, { headers: mockHeaders({ delayMs: 1500, promptTokens: 30, tag }) })
      .withResponse();
    await waitFor("the slow request to reach the upstream", () =>
      mock.requests.some((r) => r.headers["x-test-tag"] === tag) ? true : undefined,
    );
    const { data: stream, response } = await client.chat.completions
      .create(
        { ...chat, stream: true },
        { headers: mockHeaders({ completionTokens: 8, chunkDelayMs: 250 }) },
      )
      .withResponse();
    let stopping: Promise<number | null> | undefined;
    let text = "";
    let finish: string | null | undefined;
    for await (const c of stream) {
      const piece = c.choices[0]?.delta.content;
      if (piece) {
        text += piece;
        // SIGTERM as soon as the first token is in.
        stopping ??= gw.stop();
      }
      finish ??= c.choices[0]?.finish_reason;
    }
    expect(stopping).toBeDefined();
    expect(text).toBe("tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 ");
    expect(finish).toBe("stop");
    const answered = await slowAnswer;
    expect(answered.data.usage?.total_tokens).toBe(35);
    expect(await stopping).toBe(0);
    expect(gw.running).toBe(false);
    // Both requests got their log line before the process went.
    for (const r of [response, answered.response]) {
      const id = r.headers.get("x-request-id") ?? "(none)";
      expect(gw.stdout.split("\n").filter((l) => l.includes(id))).toHaveLength(1);
    }

    await gw.start();
    const s = await gw.stats(k.key);
    expect(s.total_lifetime_tokens).toBe(11 + 8 + 35);
    expect(s.total_requests).toBe(2);
  });
});

describe("logs", () => {
  test("over this whole file, no client key and never the master key appear in the logs", () => {
    for (const g of [gw, pauseGw]) {
      const all = g.stdout + g.stderr;
      expect(all).not.toContain(g.masterKey);
      for (const secret of g.secrets) expect(all).not.toContain(secret);
    }
  });
});

test("the secret sweep: every gateway's log is non-empty and holds no master, admin or client key", () => {
  expectNoSecretsInLogs();
});
