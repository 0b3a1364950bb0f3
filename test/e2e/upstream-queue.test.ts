/**
 * UPSTREAM_MAX_CONCURRENCY: the upstream plan allows only so many requests in
 * flight, and they are shared fairly between keys. A key that floods cannot
 * make another key wait behind its whole backlog; a wait that lasts too long
 * becomes a short, retryable 429; a client that leaves while waiting is
 * neither forwarded nor charged.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import {
  E2E_TIMEOUT_MS,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  mockHeaders,
  newTag,
  startGateway,
  waitFor,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";
import { thrown } from "../harness/thrown.ts";

// Explicit, for two busy cores: the runner's 5 s default measures the machine.
setDefaultTimeout(E2E_TIMEOUT_MS);

const messages = [{ role: "user" as const, content: "hello" }];

/** How long the mock takes over each request. */
const REQUEST_MS = 300;

/** One whole chat completion that takes the mock `delayMs`; resolves with its status. */
async function call(gw: GatewayProcess, key: string, delayMs: number, tag?: string) {
  const r = await gw.fetch("/v1/chat/completions", {
    method: "POST",
    headers: {
      authorization: `Bearer ${key}`,
      "content-type": "application/json",
      ...mockHeaders({ delayMs, tag }),
    },
    body: JSON.stringify({ model: "glm-4.7", messages, max_tokens: 16 }),
  });
  await r.arrayBuffer();
  return r.status;
}

/** A metric's value from /metrics (the sum over its label sets), 0 when absent. */
async function metric(gw: GatewayProcess, name: string): Promise<number> {
  const text = await (await gw.fetch("/metrics")).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) {
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return sum;
}

describe("a fair queue for upstream slots (UPSTREAM_MAX_CONCURRENCY=1)", () => {
  let mock: MockUpstream;
  let gw: GatewayProcess;

  beforeAll(async () => {
    mock = await startMockUpstream();
    gw = await startGateway({
      mock,
      env: { UPSTREAM_MAX_CONCURRENCY: "1", UPSTREAM_QUEUE_TIMEOUT_MS: "30000" },
    });
  }, HOOK_TIMEOUT_MS);
  afterAll(async () => {
    await gw?.close();
    await mock?.stop();
  }, HOOK_TIMEOUT_MS);

  test("one key floods with parallel slow requests; another key's occasional request waits at most about one request", async () => {
    const flooder = await gw.createKey({ name: "flooder", limit: "100M" });
    const calm = await gw.createKey({ name: "calm", limit: "100M" });
    const floodTag = newTag();
    let flooding = true;
    let floodDone = 0;
    // Six requests always waiting: first come, first served would put the
    // calm key behind all of them (about 6 x 300 ms).
    const loops = Array.from({ length: 6 }, async () => {
      while (flooding) {
        expect(await call(gw, flooder.key, REQUEST_MS, floodTag)).toBe(200);
        floodDone++;
      }
    });
    await waitFor("the flood to fill the queue", async () =>
      (await metric(gw, "tollgate_upstream_queue_depth")) >= 5 ? true : undefined,
    );
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      const started = performance.now();
      expect(await call(gw, calm.key, REQUEST_MS)).toBe(200);
      waits.push(performance.now() - started - REQUEST_MS);
      await Bun.sleep(200);
    }
    flooding = false;
    await Promise.all(loops);
    // The flood kept going the whole time, and never more than one request
    // was upstream at once.
    expect(floodDone).toBeGreaterThan(4);
    expect(mock.maxConcurrent).toBe(1);
    // One request's time, plus slack for a busy machine: well under the
    // 1.8 s a place behind the flood's backlog would cost.
    for (const w of waits) expect(w).toBeLessThan(REQUEST_MS + 500);
    expect(await metric(gw, "tollgate_upstream_queue_wait_seconds_count")).toBeGreaterThan(0);
    expect(await metric(gw, "tollgate_upstream_queue_depth")).toBe(0);
  }, 30_000);

  test("a stream holds its slot until its last event: the next request starts after it ends", async () => {
    const streamer = await gw.createKey({ name: "streamer", limit: "1M" });
    const next = await gw.createKey({ name: "next", limit: "1M" });
    const stream = await gw
      .openai(streamer.key)
      .chat.completions.create(
        { model: "glm-4.7", messages, stream: true },
        { headers: mockHeaders({ chunkDelayMs: 150 }) },
      );
    const started = performance.now();
    let streamEnded = 0;
    const reading = (async () => {
      for await (const _chunk of stream) {
        // read to the end
      }
      streamEnded = performance.now();
    })();
    let answered = 0;
    const waiting = call(gw, next.key, 0).then((status) => {
      answered = performance.now();
      return status;
    });
    await reading;
    expect(await waiting).toBe(200);
    // The stream took a while, and the other request (which alone takes
    // milliseconds) was answered only as the stream ended: within one of its
    // 150 ms gaps of the client reading its end, not while it ran.
    expect(streamEnded - started).toBeGreaterThan(500);
    expect(answered - started).toBeGreaterThan(streamEnded - started - 200);
  }, 30_000);
});

describe("waiting too long, and leaving while waiting (UPSTREAM_QUEUE_TIMEOUT_MS=400)", () => {
  let mock: MockUpstream;
  let gw: GatewayProcess;

  beforeAll(async () => {
    mock = await startMockUpstream();
    gw = await startGateway({
      mock,
      env: { UPSTREAM_MAX_CONCURRENCY: "1", UPSTREAM_QUEUE_TIMEOUT_MS: "400" },
    });
  }, HOOK_TIMEOUT_MS);
  afterAll(async () => {
    await gw?.close();
    await mock?.stop();
  }, HOOK_TIMEOUT_MS);

  test("a wait past the timeout is a 429 with Retry-After 1 that each SDK raises as RateLimitError, and is not charged", async () => {
    const holder = await gw.createKey({ name: "holder", limit: "1M" });
    const waiter = await gw.createKey({ name: "waiter", limit: "1M" });
    const slow = call(gw, holder.key, 2500);
    await waitFor("the slow request to reach the upstream", () =>
      mock.requestCount > 0 ? true : undefined,
    );
    const oa = await thrown(() =>
      gw
        .openai(waiter.key, { maxRetries: 0 })
        .chat.completions.create({ model: "glm-4.7", messages }),
    );
    expect(oa).toBeInstanceOf(OpenAI.RateLimitError);
    const e = oa as InstanceType<typeof OpenAI.RateLimitError>;
    expect(e.message).toContain("upstream is busy");
    expect(e.message).toContain("not the key's quota");
    expect(e.headers?.get("retry-after")).toBe("1");
    expect(e.headers?.get("x-should-retry")).toBeNull();
    const an = await thrown(() =>
      gw
        .anthropic(waiter.key, { maxRetries: 0 })
        .messages.create({ model: "glm-4.7", messages, max_tokens: 16 }),
    );
    expect(an).toBeInstanceOf(Anthropic.RateLimitError);
    expect(mock.requestCount).toBe(1);
    expect(await slow).toBe(200);
    expect(await metric(gw, "tollgate_upstream_queue_timeouts_total")).toBe(2);
    const stats = await gw.stats(waiter.key);
    expect(stats.total_requests).toBe(0);
    expect(stats.total_lifetime_tokens).toBe(0);
  }, 30_000);

  test("a client that leaves while queued leaves the queue: never forwarded, not charged", async () => {
    const holder = await gw.createKey({ name: "holder-2", limit: "1M" });
    const leaver = await gw.createKey({ name: "leaver", limit: "1M" });
    const before = mock.requestCount;
    const slow = call(gw, holder.key, 1500);
    await waitFor("the slow request to reach the upstream", () =>
      mock.requestCount > before ? true : undefined,
    );
    const tag = newTag();
    const abort = new AbortController();
    const leaving = gw
      .fetch("/v1/chat/completions", {
        method: "POST",
        headers: {
          authorization: `Bearer ${leaver.key}`,
          "content-type": "application/json",
          ...mockHeaders({ tag }),
        },
        body: JSON.stringify({ model: "glm-4.7", messages, max_tokens: 16 }),
        signal: abort.signal,
      })
      .catch((err: unknown) => err);
    await waitFor("the request to be queued", async () =>
      (await metric(gw, "tollgate_upstream_queue_depth")) === 1 ? true : undefined,
    );
    abort.abort();
    await leaving;
    await waitFor("the request to leave the queue", async () =>
      (await metric(gw, "tollgate_upstream_queue_depth")) === 0 ? true : undefined,
    );
    expect(await slow).toBe(200);
    // The slot it would have had goes unused: the upstream never sees it.
    await Bun.sleep(100);
    expect(mock.requests.filter((r) => r.headers["x-test-tag"] === tag)).toHaveLength(0);
    const stats = await gw.stats(leaver.key);
    expect(stats.total_requests).toBe(0);
    expect(stats.total_lifetime_tokens).toBe(0);
    // Not a timeout: the queue's own counter did not move for it.
    expect(await metric(gw, "tollgate_upstream_queue_timeouts_total")).toBe(2);
  }, 30_000);
});
