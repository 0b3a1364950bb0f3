/**
 * A client that reads a stream slowly must not make the gateway hold the
 * upstream's stream in memory: the gateway reads from the upstream only as
 * fast as the client takes it (backpressure end to end), so what the
 * upstream has sent stays within a few socket buffers of what the client
 * has read, however large the answer.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayProcess, HOOK_TIMEOUT_MS, startGateway } from "../harness/gateway.ts";

/**
 * A 192 MiB answer: far more than the socket buffers between the three
 * processes can hold. Linux grows a connection's receive buffer up to
 * net.ipv4.tcp_rmem's maximum (32 MiB on some machines) and its send buffer
 * up to tcp_wmem's (4 MiB): at most about 72 MiB over the two connections.
 */
const EVENTS = 192 * 1024;
const PIECE = "x".repeat(1000);
const enc = new TextEncoder();

const frame = (event: string, data: unknown) =>
  enc.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);

/** An Anthropic-style upstream whose stream is produced only as it is pulled, counting what it sent. */
function startLargeStreamUpstream() {
  let sent = 0;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    fetch() {
      let i = -1;
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          let chunk: Uint8Array;
          if (i === -1) {
            chunk = frame("message_start", {
              type: "message_start",
              message: { usage: { input_tokens: 7, output_tokens: 1 } },
            });
          } else if (i < EVENTS) {
            chunk = frame("content_block_delta", {
              type: "content_block_delta",
              delta: { type: "text_delta", text: PIECE },
            });
          } else if (i === EVENTS) {
            chunk = frame("message_delta", {
              type: "message_delta",
              usage: { output_tokens: 5000 },
            });
          } else if (i === EVENTS + 1) {
            chunk = frame("message_stop", { type: "message_stop" });
          } else {
            c.close();
            return;
          }
          i++;
          sent += chunk.byteLength;
          c.enqueue(chunk);
        },
      });
      return new Response(body, { headers: { "content-type": "text/event-stream" } });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    sent: () => sent,
    stop: () => server.stop(true),
  };
}

let upstream: ReturnType<typeof startLargeStreamUpstream>;
let gw: GatewayProcess;
let key: string;

beforeAll(async () => {
  upstream = startLargeStreamUpstream();
  gw = await startGateway({ env: { UPSTREAM_ANTHROPIC_URL: `${upstream.url}` } });
  key = (await gw.createKey({ name: "slow-reader", limit: "1M" })).key;
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await gw?.close();
  await upstream?.stop();
}, HOOK_TIMEOUT_MS);

test("a client reading slowly holds the upstream back: the gateway does not buffer the stream", async () => {
  const res = await gw.fetch("/v1/messages", {
    method: "POST",
    headers: { "x-api-key": key, "content-type": "application/json" },
    body: JSON.stringify({
      model: "glm-4.7",
      max_tokens: 8000,
      stream: true,
      messages: [{ role: "user", content: "a long answer" }],
    }),
  });
  expect(res.status).toBe(200);
  const reader = res.body?.getReader();
  if (!reader) throw new Error("no body");
  let read = 0;
  // A little, then nothing for a while: everything the gateway would buffer
  // for this client it would read from the upstream meanwhile.
  while (read < 256 * 1024) {
    const r = await reader.read();
    if (r.done) break;
    read += r.value.byteLength;
  }
  await Bun.sleep(1500);
  const total = EVENTS * (PIECE.length + 100);
  const ahead = upstream.sent() - read;
  // What is ahead sits in the kernel's buffers of the two loopback
  // connections (autotuned: 16 to 36 MiB in all seen here, at most about
  // 72). Buffering the stream in the gateway would put the whole answer
  // (192 MiB) ahead of the client.
  expect(ahead).toBeLessThan(96 * 1024 * 1024);
  expect(upstream.sent()).toBeLessThan(total / 2);
  // The rest, at full speed: complete, and charged once in full.
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    read += r.value.byteLength;
  }
  expect(read).toBe(upstream.sent());
  const stats = await gw.statsWhen(key, { tokens: 7 + 5000, requests: 1 }, 5000);
  expect(stats.total_lifetime_tokens).toBe(5007);
}, 30_000);
