/**
 * "413 without reading the whole body": a client that uploads slowly gets
 * its 413 while it is still sending, long before the end, whether it
 * declares the size (Content-Length) or not (chunked). A gateway that
 * buffered the body first would answer only once the upload was complete.
 * Raw sockets, because no HTTP client reports how much it had sent when the
 * answer came.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { connect } from "node:net";
import {
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  startGateway,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

const MAX_BODY_BYTES = 10_000;
/** What the client means to send: 100 times the limit. */
const BODY_BYTES = 100 * MAX_BODY_BYTES;
const PIECE = 1000;
const GAP_MS = 5;

let mock: MockUpstream;
let gw: GatewayProcess;
let key: string;

beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startGateway({ mock, env: { MAX_BODY_BYTES: String(MAX_BODY_BYTES) } });
  key = (await gw.createKey({ name: "uploader", limit: 1000 })).key;
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await gw?.close();
  await mock?.stop();
}, HOOK_TIMEOUT_MS);

/**
 * Sends the head, then the body PIECE bytes every GAP_MS; resolves with the
 * answer's status line and how many body bytes had been sent when it came.
 */
function slowUpload(chunked: boolean): Promise<{ status: number; sent: number }> {
  const port = Number(new URL(gw.url).port);
  const head = [
    "POST /v1/chat/completions HTTP/1.1",
    `host: 127.0.0.1:${port}`,
    `authorization: Bearer ${key}`,
    "content-type: application/json",
    chunked ? "transfer-encoding: chunked" : `content-length: ${BODY_BYTES}`,
    "",
    "",
  ].join("\r\n");
  const piece = `{"x":"${"a".repeat(PIECE - 8)}"}`.slice(0, PIECE);
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    let sent = 0;
    let reply = "";
    let answered = false;
    sock.on("data", (d) => {
      reply += d.toString("latin1");
      const m = /^HTTP\/1\.1 (\d{3})/.exec(reply);
      if (m && !answered) {
        answered = true;
        resolve({ status: Number(m[1]), sent });
        sock.destroy();
      }
    });
    sock.on("error", (err) => {
      if (!answered) reject(err);
    });
    sock.on("close", () => {
      if (!answered) reject(new Error(`connection closed without an answer after ${sent} bytes`));
    });
    sock.write(head);
    const tick = () => {
      if (answered || sock.destroyed) return;
      if (sent >= BODY_BYTES) {
        if (chunked) sock.write("0\r\n\r\n");
        return;
      }
      sock.write(chunked ? `${PIECE.toString(16)}\r\n${piece}\r\n` : piece);
      sent += PIECE;
      setTimeout(tick, GAP_MS);
    };
    tick();
  });
}

test("a declared size over the limit: 413 before a tenth of the body is sent", async () => {
  const before = mock.requestCount;
  const r = await slowUpload(false);
  expect(r.status).toBe(413);
  expect(r.sent).toBeLessThan(BODY_BYTES / 10);
  expect(mock.requestCount).toBe(before);
});

test("an undeclared size (chunked): 413 once past the limit, before a tenth of the body is sent", async () => {
  const before = mock.requestCount;
  const r = await slowUpload(true);
  expect(r.status).toBe(413);
  // It had to read past the limit to know, but not much further.
  expect(r.sent).toBeGreaterThan(MAX_BODY_BYTES);
  expect(r.sent).toBeLessThan(BODY_BYTES / 10);
  expect(mock.requestCount).toBe(before);
});

test("logs hold no key in clear", () => {
  const all = gw.stdout + gw.stderr;
  expect(gw.logLines().length).toBeGreaterThan(0);
  expect(all).not.toContain(gw.masterKey);
  for (const secret of gw.secrets) expect(all).not.toContain(secret);
});

test("the secret sweep: every gateway's log is non-empty and holds no master, admin or client key", () => {
  expectNoSecretsInLogs();
});
