/**
 * Connections and bodies have deadlines: an idle keep-alive connection is
 * closed, a body that trickles in gets a 408 in the route's dialect, and
 * neither ever cuts a stream or a slow answer of the upstream.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import net from "node:net";
import {
  E2E_TIMEOUT_MS,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  mockHeaders,
  startGateway,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";

// Explicit, for two busy cores: the runner's 5 s default measures the machine.
setDefaultTimeout(E2E_TIMEOUT_MS);

let mock: MockUpstream;
let gw: GatewayProcess;
let key: string;

beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startGateway({
    mock,
    env: { IDLE_TIMEOUT_SECONDS: "1", BODY_TIMEOUT_MS: "500" },
  });
  key = (await gw.createKey({ name: "deadlines", limit: "1M" })).key;
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await gw?.close();
  await mock?.stop();
}, HOOK_TIMEOUT_MS);

interface Exchange {
  /** Everything the gateway sent. */
  text: string;
  /** When the gateway closed the connection, in ms after connecting; null if it had not by `waitMs`. */
  closedAfterMs: number | null;
}

/** Writes `request` on a raw socket and watches what comes back for up to `waitMs`. */
function exchange(request: string, waitMs: number): Promise<Exchange> {
  const port = Number(new URL(gw.url).port);
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = net.connect(port, "127.0.0.1", () => socket.write(request));
    let text = "";
    socket.on("data", (b) => {
      text += b.toString();
    });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closedAfterMs: null });
    }, waitMs);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ text, closedAfterMs: performance.now() - started });
    });
  });
}

describe("idle connections", () => {
  test("a keep-alive connection left idle after GET /health is closed", async () => {
    const r = await exchange("GET /health HTTP/1.1\r\nHost: gw\r\n\r\n", 8000);
    expect(r.text).toStartWith("HTTP/1.1 200");
    expect(r.closedAfterMs).not.toBeNull();
  }, 15_000);

  test("a stream that stays quiet longer than the idle bound is not cut", async () => {
    const client = gw.openai(key, { maxRetries: 0 });
    const stream = await client.chat.completions.create(
      { model: "glm-4.7", messages: [{ role: "user", content: "think" }], stream: true },
      { headers: mockHeaders({ pauseMs: 3000, completionTokens: 5 }) },
    );
    let text = "";
    for await (const part of stream) text += part.choices[0]?.delta?.content ?? "";
    expect(text.length).toBeGreaterThan(0);
    const usage = await gw.statsWhen(key, { tokens: 11 + 5, requests: 1 }, 2000);
    expect(usage.total_requests).toBe(1);
  }, 15_000);

  test("after a streamed answer the idle bound is back: the keep-alive connection left idle is closed", async () => {
    const body = JSON.stringify({
      model: "glm-4.7",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    });
    const r = await exchange(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${key}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      8000,
    );
    expect(r.text).toStartWith("HTTP/1.1 200");
    expect(r.text).toContain("data: [DONE]");
    expect(r.closedAfterMs).not.toBeNull();
  }, 15_000);

  test("an answer the upstream takes longer than the idle bound to start is not cut", async () => {
    const client = gw.anthropic(key, { maxRetries: 0 });
    const msg = await client.messages.create(
      { model: "glm-4.7", max_tokens: 16, messages: [{ role: "user", content: "slow" }] },
      { headers: mockHeaders({ delayMs: 3000 }) },
    );
    expect(msg.type).toBe("message");
  }, 15_000);
});

describe("request body deadline", () => {
  const trickle = (path: string, extra: string) =>
    `POST ${path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${key}\r\n${extra}` +
    "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{";

  test("a body that never arrives gets a 408 in the OpenAI dialect, and the connection is closed", async () => {
    const r = await exchange(trickle("/v1/chat/completions", ""), 8000);
    expect(r.text).toStartWith("HTTP/1.1 408");
    const body = JSON.parse(r.text.slice(r.text.indexOf("\r\n\r\n") + 4)) as {
      error: { type: string; code: string; message: string };
    };
    expect(body.error.code).toBe("request_timeout");
    expect(body.error.message).toContain("500 ms");
    expect(r.closedAfterMs).not.toBeNull();
  }, 15_000);

  test("the same on an Anthropic route answers in the Anthropic dialect", async () => {
    const r = await exchange(trickle("/v1/messages", "anthropic-version: 2023-06-01\r\n"), 8000);
    expect(r.text).toStartWith("HTTP/1.1 408");
    const body = JSON.parse(r.text.slice(r.text.indexOf("\r\n\r\n") + 4)) as {
      type: string;
      error: { type: string };
    };
    expect(body.type).toBe("error");
    expect(body.error.type).toBe("invalid_request_error");
    expect(r.closedAfterMs).not.toBeNull();
  }, 15_000);
});
