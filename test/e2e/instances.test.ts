import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  type GatewayProcess,
  startGateway,
  waitFor,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";
import { type TestDatabase, testPostgres } from "../harness/postgres.ts";
import { describeNeedingPostgres, NEEDS_SERVER } from "../harness/require-postgres.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

// Two real gateway processes on one PostgreSQL database, as behind a load
// balancer: one quota per key, every token charged once, key changes obeyed
// by both within a second.

const pg = await testPostgres();

const chat = (gw: GatewayProcess, key: string) =>
  gw.fetch("/v1/chat/completions", {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "glm-4.7", messages: [{ role: "user", content: "hi" }] }),
  });

/** Polls until `check` holds; returns how long it took. */
async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < ms) {
    if (await check()) return performance.now() - started;
    await Bun.sleep(10);
  }
  throw new Error(`not within ${ms} ms`);
}

describeNeedingPostgres(
  "two instances on one PostgreSQL database",
  pg.shared ? undefined : NEEDS_SERVER,
  () => {
    let mock: MockUpstream;
    let db: TestDatabase;
    let a: GatewayProcess;
    let b: GatewayProcess;

    beforeAll(async () => {
      mock = await startMockUpstream({ record: false });
      db = await pg.create();
      // Each process has its own data folder, hence its own journal.
      a = await startGateway({ mock, env: { DATABASE_URL: db.url } });
      b = await startGateway({ mock, env: { DATABASE_URL: db.url } });
    });
    afterAll(async () => {
      await a?.close();
      await b?.close();
      await db?.drop();
      await mock?.stop();
    });

    test("lifetime totals and window usage are exact across instances", async () => {
      const k = await a.createKey({ name: "shared", limit: "10M" });
      const before = mock.tokensReported;
      const results = await Promise.all(
        Array.from({ length: 300 }, (_, i) => chat(i % 2 ? a : b, k.key).then((r) => r.status)),
      );
      expect(results.every((s) => s === 200)).toBe(true);
      const spent = mock.tokensReported - before;
      expect(spent).toBe(300 * 16);
      for (const gw of [a, b]) {
        const s = await gw.statsWhen(k.key, { tokens: spent, requests: 300 }, 2000);
        expect(s.current_usage.tokens_used_in_current_window).toBe(spent);
      }
    });

    test("requests 100 ms apart, alternating instances, admit no more than one instance would", async () => {
      // 16 tokens a request, limit 100: one instance admits 7 (96 < 100 lets the 7th in).
      const k = await a.createKey({ name: "alternating", limit: 100 });
      const statuses: number[] = [];
      for (let i = 0; i < 14; i++) {
        const r = await chat(i % 2 ? b : a, k.key);
        statuses.push(r.status);
        await r.arrayBuffer();
        await Bun.sleep(100);
      }
      const admitted = statuses.filter((s) => s === 200).length;
      expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
      expect(admitted).toBe(7);
      // Refused from the first 429 on: the quota does not flicker between instances.
      expect(statuses.slice(0, 7).every((s) => s === 200)).toBe(true);
      // The last ones admitted, with less room than their input estimate, went
      // upstream with their output capped to what remained: at most 16 each.
      const s = await waitFor(
        "both instances' usage to be flushed",
        async () => {
          const st = await b.stats(k.key);
          return st.total_requests === 7 ? st : undefined;
        },
        2000,
      );
      expect(s.total_lifetime_tokens).toBeGreaterThanOrEqual(100);
      expect(s.total_lifetime_tokens).toBeLessThanOrEqual(7 * 16);
      expect(s.current_usage.remaining_tokens).toBe(0);
    });

    test("a key disabled on one instance is refused by the other within a second", async () => {
      const k = await a.createKey({ name: "revoke-me", limit: "1M" });
      expect((await chat(b, k.key)).status).toBe(200);
      expect((await a.cli(["keys", "update", k.id, "--disable"])).code).toBe(0);
      const took = await within(1000, async () => (await chat(b, k.key)).status === 403);
      process.stderr.write(
        `[instances] disable obeyed by the other instance after ${took.toFixed(0)} ms\n`,
      );
    });

    test("a deleted key is refused by both within a second", async () => {
      const k = await b.createKey({ name: "delete-me", limit: "1M" });
      expect((await chat(a, k.key)).status).toBe(200);
      expect((await b.cli(["keys", "delete", k.id, "--yes"])).code).toBe(0);
      await within(1000, async () => (await chat(a, k.key)).status === 401);
      await within(1000, async () => (await chat(b, k.key)).status === 401);
    });

    test("a lowered limit, a past expiry and a rotated secret are obeyed within a second", async () => {
      const k = await a.createKey({ name: "change-me", limit: "1M" });
      expect((await chat(b, k.key)).status).toBe(200);
      expect((await a.cli(["keys", "update", k.id, "--limit", "10"])).code).toBe(0);
      await within(1000, async () => (await chat(b, k.key)).status === 429);
      expect(
        (await a.cli(["keys", "update", k.id, "--limit", "1M", "--expires", "2020-01-01"])).code,
      ).toBe(0);
      await within(1000, async () => (await chat(b, k.key)).status === 403);
      expect((await a.cli(["keys", "update", k.id, "--expires", "never"])).code).toBe(0);
      const fresh = await a.rotateKey(k.id);
      await within(1000, async () => (await chat(b, k.key)).status === 401);
      expect((await chat(b, fresh)).status).toBe(200);
    });

    test("a model override set on one instance is forced by the other within a second", async () => {
      const recording = await startMockUpstream();
      const c = await startGateway({ mock: recording, env: { DATABASE_URL: db.url } });
      try {
        const k = await a.createKey({ name: "model-me", limit: "1M" });
        expect((await chat(c, k.key)).status).toBe(200);
        expect((await a.cli(["keys", "update", k.id, "--model", "glm-4.5-air"])).code).toBe(0);
        await within(1000, async () => {
          await (await chat(c, k.key)).arrayBuffer();
          return (
            (recording.requests.at(-1)?.body as { model?: string } | null)?.model === "glm-4.5-air"
          );
        });
      } finally {
        await c.close();
        await recording.stop();
      }
    });

    test("the secret sweep: every gateway's log is non-empty and holds no master, admin or client key", () => {
      expectNoSecretsInLogs();
    });
  },
);
