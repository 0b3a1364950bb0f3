/**
 * A streamed answer must not keep its request alive: a coding agent's
 * request body can be megabytes, and its answer can stream for minutes. Once
 * the call upstream is made, the body is garbage, however long the stream:
 * nothing that lives as long as the stream (the charge the ledger holds, the
 * stream's own callbacks) may hold the route's scope, where the body is.
 */

import { heapStats } from "bun:jsc";
import { afterAll, beforeAll, expect, test } from "bun:test";
import { makeTestApp } from "../harness/app.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";

const MiB = 1024 * 1024;
/** Large enough to stand far above what one request otherwise leaves on the heap. */
const BODY_MIB = 24;

let upstream: MockUpstream;
let t: Awaited<ReturnType<typeof makeTestApp>>;

beforeAll(async () => {
  // Not recorded: the mock itself must not hold the bodies it receives.
  upstream = await startMockUpstream({ record: false });
  t = await makeTestApp({
    UPSTREAM_OPENAI_URL: upstream.openaiBase,
    UPSTREAM_ANTHROPIC_URL: upstream.anthropicBase,
  });
});

afterAll(async () => {
  await t.cleanup();
  upstream.stop();
});

function heapMiB(): number {
  Bun.gc(true);
  return heapStats().heapSize / MiB;
}

for (const dialect of ["openai", "anthropic"] as const) {
  test(`${dialect}: a paused stream does not hold its ${BODY_MIB} MiB request body`, async () => {
    const { secret } = await t.newKey({ tokenLimit: 100_000_000 });
    const content = "x".repeat(BODY_MIB * MiB);
    const body =
      dialect === "openai"
        ? { model: "glm-4.7", stream: true, messages: [{ role: "user", content }] }
        : {
            model: "glm-4.7",
            max_tokens: 64,
            stream: true,
            messages: [{ role: "user", content }],
          };
    const path = dialect === "openai" ? "/v1/chat/completions" : "/v1/messages";
    const before = heapMiB();
    const res = await t.app.request(path, {
      method: "POST",
      headers: {
        authorization: `Bearer ${secret}`,
        "content-type": "application/json",
        // The upstream pauses after the first piece of the answer.
        "x-mock-pause-ms": "1500",
      },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(first.done).toBe(false);
    // Mid-stream, with the upstream paused: what the request held is free.
    const during = heapMiB();
    let text = new TextDecoder().decode(first.value);
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      text += new TextDecoder().decode(r.value);
    }
    expect(text).toContain(dialect === "openai" ? "[DONE]" : "message_stop");
    // Measured: held, the heap stands about 12 MiB higher mid-stream; let
    // go, under one MiB.
    expect(during - before).toBeLessThan(BODY_MIB / 4);
  }, 20_000);
}
