/**
 * Exact accounting: whatever the concurrency and however the process ends,
 * every token the upstream reported is charged once, no more, no less.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type Anthropic from "@anthropic-ai/sdk";
import {
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  mockHeaders,
  type Stats,
  startGateway,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

const chat = { model: "glm-4.7", messages: [{ role: "user" as const, content: "hello" }] };
const message = { ...chat, max_tokens: 32 };
/** Anthropic's cache creation + cache read tokens, fixed by the mock. */
const CACHE = 3 + 2;

let mock: MockUpstream;

beforeAll(async () => {
  mock = await startMockUpstream();
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await mock?.stop();
}, HOOK_TIMEOUT_MS);

/** What an Anthropic client is told: the mock's input, output and cache counts. */
function expectAnthropicUsage(usage: Anthropic.Usage, prompt: number, completion: number): void {
  expect(usage).toMatchObject({ input_tokens: prompt, output_tokens: completion });
  expect((usage.cache_creation_input_tokens ?? 0) + (usage.cache_read_input_tokens ?? 0)).toBe(
    CACHE,
  );
}

/**
 * Sends a mixed set of requests, all read to the end; returns the tokens the
 * upstream (the mock) reported for them, which is what they must cost. The
 * requests of one call run alone: nothing else talks to the mock meanwhile.
 */
async function traffic(gw: GatewayProcess, key: string, n: number, seed = 0): Promise<number> {
  const before = mock.tokensReported;
  const openai = gw.openai(key, { maxRetries: 0 });
  const anthropic = gw.anthropic(key, { maxRetries: 0 });
  const calls: Array<Promise<void>> = [];
  for (let j = 0; j < n; j++) {
    const i = j + seed;
    const prompt = 1 + (i % 37);
    const completion = 1 + (i % 5);
    const headers = mockHeaders({ promptTokens: prompt, completionTokens: completion });
    switch (i % 5) {
      case 0:
        calls.push(
          openai.chat.completions.create(chat, { headers }).then((r) => {
            expect(r.usage?.total_tokens).toBe(prompt + completion);
          }),
        );
        break;
      case 1:
      case 2:
        calls.push(
          (async () => {
            const stream = await openai.chat.completions.create(
              { ...chat, stream: true, stream_options: { include_usage: i % 5 === 2 } },
              { headers },
            );
            let text = "";
            for await (const c of stream) text += c.choices[0]?.delta.content ?? "";
            expect(text.split(" ").length - 1).toBe(completion);
          })(),
        );
        break;
      case 3:
        calls.push(
          anthropic.messages.create(message, { headers }).then((m) => {
            expectAnthropicUsage(m.usage, prompt, completion);
          }),
        );
        break;
      default:
        calls.push(
          anthropic.messages
            .stream(message, { headers })
            .finalMessage()
            .then((m) => {
              expectAnthropicUsage(m.usage, prompt, completion);
            }),
        );
    }
  }
  await Promise.all(calls);
  const reported = mock.tokensReported - before;
  // Every request cost something (at least 2 tokens), so a total of 0 cannot pass.
  expect(reported).toBeGreaterThanOrEqual(2 * n);
  return reported;
}

function expectTotals(s: Stats, tokens: number, requests: number): void {
  expect({
    tokens: s.total_lifetime_tokens,
    requests: s.total_requests,
    window: s.current_usage.tokens_used_in_current_window,
    remaining: s.current_usage.remaining_tokens,
  }).toEqual({
    tokens,
    requests,
    window: tokens,
    remaining: s.token_limit_per_5h - tokens,
  });
}

describe("concurrency", () => {
  let gw: GatewayProcess;
  beforeAll(async () => {
    gw = await startGateway({ mock });
  }, HOOK_TIMEOUT_MS);
  afterAll(async () => {
    await gw?.close();
  }, HOOK_TIMEOUT_MS);

  test("300 simultaneous requests on one key, streamed and not: totals exact", async () => {
    const k = await gw.createKey({ name: "concurrent", limit: "10M" });
    // What the upstream reported, charged once each: the gateway's totals are
    // compared with the mock's own count.
    const expected = await traffic(gw, k.key, 300);
    const s = await gw.statsWhen(k.key, { tokens: expected, requests: 300 }, 2000);
    expectTotals(s, expected, 300);
    // And it stays exact once everything is written to the database.
    await Bun.sleep(300);
    expectTotals(await gw.stats(k.key), expected, 300);
  });

  test("logs hold no key in clear", () => {
    const all = gw.stdout + gw.stderr;
    expect(all).not.toContain(gw.masterKey);
    for (const secret of gw.secrets) expect(all).not.toContain(secret);
  });
});

describe("restarts", () => {
  let gw: GatewayProcess;
  beforeAll(async () => {
    gw = await startGateway({ mock });
  }, HOOK_TIMEOUT_MS);
  afterAll(async () => {
    await gw?.close();
  }, HOOK_TIMEOUT_MS);

  test("usage survives a graceful stop (SIGTERM) and start", async () => {
    const k = await gw.createKey({ name: "survives-sigterm", limit: "1M" });
    const expected = await traffic(gw, k.key, 20);
    await gw.statsWhen(k.key, { tokens: expected, requests: 20 }, 1000);
    expect(await gw.stop()).toBe(0);
    await gw.start();
    expectTotals(await gw.stats(k.key), expected, 20);
  });

  test("a SIGTERM after a pause exits at once, charging the stream it cuts", async () => {
    const k = await gw.createKey({ name: "second-signal", limit: "1M" });
    const expected = await traffic(gw, k.key, 10, 5);
    // A slow stream keeps the first SIGTERM waiting for it…
    const slow = gw.fetch("/v1/chat/completions", {
      method: "POST",
      headers: {
        authorization: `Bearer ${k.key}`,
        "content-type": "application/json",
        "x-mock-chunk-delay-ms": "1000",
      },
      body: JSON.stringify({ model: "glm-4.7", stream: true, messages: [] }),
    });
    const res = await slow;
    expect(res.status).toBe(200);
    const started = performance.now();
    // …and a second one, after a deliberate pause, does not wait.
    expect(await gw.terminateTwice(1200)).toBe(130);
    expect(performance.now() - started).toBeLessThan(4000);
    await res.text().catch(() => "");
    await gw.start();
    // Every answered request is charged once, and the cut stream what was
    // known of it when the process left (an estimate: it never reported usage).
    const stats = await gw.stats(k.key);
    expect(stats.total_requests).toBe(11);
    expect(stats.total_lifetime_tokens).toBeGreaterThan(expected);
  });

  test("usage survives SIGKILL right after the requests (journal replay), never doubled", async () => {
    const k = await gw.createKey({ name: "survives-sigkill", limit: "1M" });
    const expected = await traffic(gw, k.key, 40, 7);
    await gw.kill();
    await gw.start();
    expectTotals(await gw.stats(k.key), expected, 40);
    // Replaying again changes nothing: killed again, and stopped gracefully.
    await gw.kill();
    await gw.start();
    expectTotals(await gw.stats(k.key), expected, 40);
    await gw.restart();
    expectTotals(await gw.stats(k.key), expected, 40);
    // And it keeps counting from there.
    const more = await traffic(gw, k.key, 5, 3);
    await gw.kill();
    await gw.start();
    expectTotals(await gw.stats(k.key), expected + more, 45);
  });

  test("usage only in the journal (flushes held back) survives SIGKILL, twice", async () => {
    // With flushes an hour apart, nothing reaches the database before the kill.
    const slow = await startGateway({ mock, env: { FLUSH_INTERVAL_MS: "3600000" } });
    try {
      const k = await slow.createKey({ name: "journal-only", limit: "1M" });
      const expected = await traffic(slow, k.key, 25, 11);
      expectTotals(await slow.stats(k.key), expected, 25);
      // Precondition: the database has none of it yet, so only the journal can bring it back.
      const before = await slow.cli(["keys", "show", k.id, "--json"]);
      expect(JSON.parse(before.stdout)).toMatchObject({ total_lifetime_tokens: 0 });
      await slow.kill();
      await slow.start();
      expectTotals(await slow.stats(k.key), expected, 25);
      await slow.kill();
      await slow.start();
      expectTotals(await slow.stats(k.key), expected, 25);
      // The CLI reads the database directly: the replay really wrote it there.
      const shown = await slow.cli(["keys", "show", k.id, "--json"]);
      expect(shown.code).toBe(0);
      expect(JSON.parse(shown.stdout)).toMatchObject({
        total_lifetime_tokens: expected,
        total_requests: 25,
        usage: { tokens_used_in_current_window: expected },
      });
      const all = slow.stdout + slow.stderr;
      expect(all).not.toContain(slow.masterKey);
      expect(all).not.toContain(k.key);
    } finally {
      await slow.close();
    }
  });

  test("logs hold no key in clear", () => {
    const all = gw.stdout + gw.stderr;
    expect(all).not.toContain(gw.masterKey);
    for (const secret of gw.secrets) expect(all).not.toContain(secret);
  });
});

test("the secret sweep: every gateway's log is non-empty and holds no master, admin or client key", () => {
  expectNoSecretsInLogs();
});
