/**
 * Readiness tells the truth: a gateway that would answer every proxied call
 * with 503 is not ready, whatever else is fine.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { E2E_TIMEOUT_MS, HOOK_TIMEOUT_MS, startGateway } from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";

// Explicit, for two busy cores: the runner's 5 s default measures the machine.
setDefaultTimeout(E2E_TIMEOUT_MS);

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream();
}, HOOK_TIMEOUT_MS);
afterAll(async () => {
  await mock?.stop();
}, HOOK_TIMEOUT_MS);

interface Ready {
  status: string;
  upstream: { configured: boolean; error: string | null };
}

test("without UPSTREAM_API_KEY, /health/ready says down with 503 and why; /health stays up", async () => {
  const bare = await startGateway({ mock, env: { UPSTREAM_API_KEY: undefined } });
  try {
    const res = await bare.fetch("/health/ready");
    expect(res.status).toBe(503);
    const body = (await res.json()) as Ready;
    expect(body.status).toBe("down");
    expect(body.upstream.configured).toBe(false);
    expect(body.upstream.error).toContain("UPSTREAM_API_KEY");
    expect((await bare.fetch("/health")).status).toBe(200);
    const cli = await bare.cli(["health", "--url", bare.url]);
    expect(cli.code).toBe(1);
    expect(cli.stdout).toContain("UPSTREAM_API_KEY");
  } finally {
    await bare.close();
  }
}, 15_000);

test("with UPSTREAM_API_KEY, the same gateway is ready", async () => {
  const gw = await startGateway({ mock });
  try {
    const res = await gw.fetch("/health/ready");
    expect(res.status).toBe(200);
    const body = (await res.json()) as Ready;
    expect(body.status).toBe("ok");
    expect(body.upstream).toEqual({ configured: true, error: null });
  } finally {
    await gw.close();
  }
}, 15_000);
