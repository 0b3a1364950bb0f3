/**
 * Messages a new user meets: a 502 says which upstream host failed and why,
 * the gateway's own address leads to a page, and opening the dashboard before
 * signing in is not a warning in the logs.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import OpenAI from "openai";
import {
  E2E_TIMEOUT_MS,
  freePort,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  startGateway,
} from "../harness/gateway.ts";

// Explicit, for two busy cores: the runner's 5 s default measures the machine.
setDefaultTimeout(E2E_TIMEOUT_MS);

const ADMIN_KEY = "admin-messages-0123456789abcdef";
let gw: GatewayProcess;
let closedPort: number;

beforeAll(async () => {
  closedPort = freePort();
  const closed = `http://127.0.0.1:${closedPort}`;
  gw = await startGateway({
    env: {
      ADMIN_API_KEY: ADMIN_KEY,
      UPSTREAM_OPENAI_URL: `${closed}/v4`,
      UPSTREAM_ANTHROPIC_URL: `${closed}/anthropic`,
    },
  });
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await gw?.close();
}, HOOK_TIMEOUT_MS);

test("a 502 names the upstream host and the cause, not the runtime's sentence", async () => {
  const k = await gw.createKey({ name: "messages", limit: 1000 });
  const err = await gw
    .openai(k.key, { maxRetries: 0 })
    .chat.completions.create({ model: "glm-4.7", messages: [{ role: "user", content: "hi" }] })
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  expect(err).toBeInstanceOf(OpenAI.InternalServerError);
  const message = (err as Error).message;
  expect(message).toContain(`127.0.0.1:${closedPort}`);
  expect(message).toContain("connection refused");
  expect(message).not.toContain("Is the computer able to access the url");
});

test("GET / sends people to /usage", async () => {
  const res = await gw.fetch("/", { redirect: "manual" });
  expect(res.status).toBe(302);
  expect(res.headers.get("location")).toBe("/usage");
  const followed = await gw.fetch("/");
  expect(followed.status).toBe(200);
  expect(followed.headers.get("content-type")).toContain("text/html");
});

test("opening the dashboard before signing in is not logged as a warning", async () => {
  const before = gw.logLines().length;
  expect((await gw.fetch("/dashboard")).status).toBe(200);
  // What the page asks first: is there a session?
  expect((await gw.fetch("/admin/session")).status).toBe(401);
  await Bun.sleep(100);
  const lines = gw.logLines().slice(before);
  const warned = lines.filter((l) => l.level === "warn" || l.level === 40);
  expect(warned).toEqual([]);
});
