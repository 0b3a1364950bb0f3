/**
 * A personal coding plan is for one person. When the upstream is a
 * coding-plan endpoint and more than one key is active, `serve` says so in
 * one line at start, pointing to docs/quotas.md; it still serves every key.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  E2E_TIMEOUT_MS,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  startGateway,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";

// Explicit, for two busy cores: the runner's 5 s default measures the machine.
setDefaultTimeout(E2E_TIMEOUT_MS);

const messages = [{ role: "user" as const, content: "hello" }];

const notices = (gw: GatewayProcess) =>
  gw.logLines().filter((l) => String(l.msg).includes("personal coding-plan endpoint"));

describe("the shared coding plan notice", () => {
  let mock: MockUpstream;

  beforeAll(async () => {
    mock = await startMockUpstream();
  }, HOOK_TIMEOUT_MS);
  afterAll(async () => {
    await mock?.stop();
  }, HOOK_TIMEOUT_MS);

  test("a coding-plan endpoint: no notice for one key; one line once a second key is active; every key still served", async () => {
    const coding = `${mock.url}/api/coding/paas/v4`;
    const gw = await startGateway({
      mock,
      env: { UPSTREAM_OPENAI_URL: coding },
    });
    try {
      expect(notices(gw)).toHaveLength(0);
      const first = await gw.createKey({ name: "my-laptop", limit: "1M" });
      await gw.restart();
      expect(notices(gw)).toHaveLength(0);
      const second = await gw.createKey({ name: "someone-else", limit: "1M" });
      await gw.restart();
      const said = notices(gw);
      expect(said).toHaveLength(1);
      expect(said[0]?.level).toBe("warn");
      expect(String(said[0]?.msg)).toContain(coding);
      expect(String(said[0]?.msg)).toContain("2 keys are active");
      expect(String(said[0]?.msg)).toContain("docs/quotas.md#upstream-accounts");
      // A notice, not a refusal: both keys are served.
      for (const k of [first, second]) {
        const answer = await gw
          .anthropic(k.key)
          .messages.create({ model: "glm-4.7", messages, max_tokens: 16 });
        expect(answer.type).toBe("message");
      }
    } finally {
      await gw.close();
    }
  }, 60_000);

  test("a pay-as-you-go endpoint shared by several keys gets no notice", async () => {
    const gw = await startGateway({
      mock,
      env: { UPSTREAM_OPENAI_URL: `${mock.url}/api/paas/v4` },
    });
    try {
      await gw.createKey({ name: "a", limit: "1M" });
      await gw.createKey({ name: "b", limit: "1M" });
      await gw.restart();
      expect(gw.logLines().some((l) => l.msg === "tollgate listening")).toBe(true);
      expect(notices(gw)).toHaveLength(0);
    } finally {
      await gw.close();
    }
  }, 60_000);
});
