/**
 * The optional rolling 7-day limit as a user meets it: usage older than the
 * 5-hour window still counts against the week, the week binds first, and the
 * 429's Retry-After is the week's wait, which both SDKs report at once.
 * On SQLite and on PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { openPostgresStorage } from "../../src/storage/postgres/index.ts";
import { openSqliteStorage } from "../../src/storage/sqlite/index.ts";
import type { Storage } from "../../src/storage/types.ts";
import { bucketStartOf } from "../../src/time/buckets.ts";
import {
  E2E_TIMEOUT_MS,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  startGateway,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";
import { type TestDatabase, testPostgres } from "../harness/postgres.ts";
import { thrown } from "../harness/thrown.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

const HOUR_MS = 60 * 60 * 1000;
const WEEK_S = 7 * 24 * 60 * 60;
const FIVE_HOURS_S = 5 * 60 * 60;
const chat = { model: "glm-4.7", messages: [{ role: "user" as const, content: "hello" }] };

let seq = 0;
/** Usage written as another instance would have written it, `agoMs` ago. */
async function seedUsage(storage: Storage, keyId: string, tokens: number, agoMs: number) {
  const bucketStart = bucketStartOf(Date.now() - agoMs);
  seq++;
  await storage.applyUsage({
    instanceId: "seeded-by-test",
    firstSeq: seq,
    lastSeq: seq,
    keys: [
      {
        keyId,
        tokens,
        requests: 1,
        lastUsedAt: bucketStart,
        buckets: [{ bucketStart, tokens, requests: 1 }],
      },
    ],
  });
  return bucketStart;
}

function countingFetch() {
  const counter = {
    calls: 0,
    fetch: (url: string | URL | Request, init?: RequestInit) => {
      counter.calls++;
      return fetch(url, init);
    },
  };
  return counter;
}

/** Retry-After is when the seeded bucket leaves the week, not the 5 hours. */
function expectWeekWait(headers: Headers, seededStart: number): void {
  const retryAfter = Number(headers.get("retry-after"));
  const expected = (seededStart + WEEK_S * 1000 - Date.now()) / 1000;
  expect(retryAfter).toBeGreaterThan(FIVE_HOURS_S);
  expect(Math.abs(retryAfter - expected)).toBeLessThan(120);
  expect(headers.get("x-should-retry")).toBe("false");
}

function weeklySuite(
  name: string,
  setup: () => Promise<{
    env: Record<string, string>;
    open: (gw: GatewayProcess) => Storage;
    cleanup: () => Promise<void>;
  }>,
) {
  describe(name, () => {
    let mock: MockUpstream;
    let gw: GatewayProcess;
    let storage: Storage;
    let cleanup: () => Promise<void>;

    beforeAll(async () => {
      mock = await startMockUpstream();
      const s = await setup();
      cleanup = s.cleanup;
      gw = await startGateway({ mock, env: s.env });
      storage = s.open(gw);
    }, HOOK_TIMEOUT_MS);

    afterAll(async () => {
      await storage?.close();
      await gw?.close();
      await mock?.stop();
      await cleanup?.();
    }, HOOK_TIMEOUT_MS);

    test("OpenAI: usage from two days ago spends the week; RateLimitError at once, Retry-After from the week", async () => {
      const weekly = await gw.createKey({
        name: "weekly-openai",
        limit: 100_000,
        weeklyLimit: 500,
      });
      const plain = await gw.createKey({ name: "plain-openai", limit: 100_000 });
      const seeded = await seedUsage(storage, weekly.id, 500, 2 * 24 * HOUR_MS);
      await seedUsage(storage, plain.id, 500, 2 * 24 * HOUR_MS);

      // Without a weekly limit, usage older than 5 hours no longer counts.
      const ok = await gw.openai(plain.key).chat.completions.create(chat);
      expect(ok.choices.length).toBeGreaterThan(0);

      const counter = countingFetch();
      const before = mock.requestCount;
      const err = await thrown(() =>
        gw.openai(weekly.key, { fetch: counter.fetch }).chat.completions.create(chat),
      );
      expect(err).toBeInstanceOf(OpenAI.RateLimitError);
      const e = err as InstanceType<typeof OpenAI.RateLimitError>;
      expect(e.message).toContain("per 7 days");
      expectWeekWait(e.headers, seeded);
      expect(e.headers.get("x-ratelimit-limit-tokens")).toBe("500");
      expect(e.headers.get("x-ratelimit-remaining-tokens")).toBe("0");
      expect(counter.calls).toBe(1);
      expect(mock.requestCount).toBe(before);

      const stats = (await gw.stats(weekly.key)) as unknown as Record<string, unknown>;
      expect(stats.token_limit_per_week).toBe(500);
      expect(stats.binding_window).toBe("week");
      expect(stats.current_usage).toMatchObject({ tokens_used_in_current_window: 0 });
      expect(stats.weekly_usage).toMatchObject({
        tokens_used_in_current_window: 500,
        remaining_tokens: 0,
      });

      // --no-weekly-limit lifts it: the key works again within about a second.
      const lifted = await gw.cli(["keys", "update", weekly.id, "--no-weekly-limit"]);
      expect(lifted.code).toBe(0);
      let answered = false;
      for (let i = 0; i < 50 && !answered; i++) {
        answered = await gw
          .openai(weekly.key, { maxRetries: 0 })
          .chat.completions.create(chat)
          .then(
            () => true,
            () => false,
          );
        if (!answered) await Bun.sleep(100);
      }
      expect(answered).toBe(true);
    });

    test("Anthropic: the week binds before the 5 hours; headers and Retry-After describe the week", async () => {
      const k = await gw.createKey({ name: "weekly-anthropic", limit: 100_000, weeklyLimit: 1000 });
      const seeded = await seedUsage(storage, k.id, 950, 3 * 24 * HOUR_MS);
      const message = { ...chat, max_tokens: 4 };
      // 50 left of the week: admitted, with the week's numbers in the headers,
      // until what remains no longer holds a request (a few at most).
      const counter = countingFetch();
      const client = gw.anthropic(k.key, { fetch: counter.fetch });
      let admitted = 0;
      let err: unknown;
      for (let i = 0; i < 5 && err === undefined; i++) {
        const before = counter.calls;
        try {
          const { response } = await client.messages.create(message).withResponse();
          admitted++;
          expect(response.headers.get("anthropic-ratelimit-tokens-limit")).toBe("1000");
        } catch (e) {
          err = e;
          // Reported at once: one attempt, no retries.
          expect(counter.calls - before).toBe(1);
        }
      }
      expect(admitted).toBeGreaterThanOrEqual(1);
      expect(err).toBeInstanceOf(Anthropic.RateLimitError);
      const e = err as InstanceType<typeof Anthropic.RateLimitError>;
      expectWeekWait(e.headers, seeded);
      expect(e.headers.get("anthropic-ratelimit-tokens-limit")).toBe("1000");
      expect(e.message).toContain("per 7 days");
    });

    test("keys show and the admin view carry both windows", async () => {
      const k = await gw.createKey({ name: "weekly-show", limit: 100_000, weeklyLimit: 70_000 });
      await seedUsage(storage, k.id, 300, 30 * HOUR_MS);
      const shown = await gw.cli(["keys", "show", k.id, "--json"]);
      expect(shown.code).toBe(0);
      const obj = JSON.parse(shown.stdout);
      expect(obj.token_limit_per_week).toBe(70_000);
      expect(obj.usage.tokens_used_in_current_window).toBe(0);
      expect(obj.weekly_usage).toMatchObject({
        tokens_used_in_current_window: 300,
        remaining_tokens: 69_700,
      });
      const text = await gw.cli(["keys", "show", k.id]);
      expect(text.stdout).toContain("70,000 tokens per 7 days; 300 used, 69,700 left");
      const bad = await gw.cli(["keys", "update", k.id, "--weekly-limit", "-5"]);
      expect(bad.code).not.toBe(0);
      const again = JSON.parse((await gw.cli(["keys", "show", k.id, "--json"])).stdout);
      expect(again.token_limit_per_week).toBe(70_000);
    });
  });
}

weeklySuite("weekly window on SQLite", async () => ({
  env: {},
  open: (gw) => openSqliteStorage(gw.dbPath),
  cleanup: async () => {},
}));

const pg = await testPostgres();
let db: TestDatabase | undefined;
weeklySuite("weekly window on PostgreSQL", async () => {
  db = await pg.create();
  const url = db.url;
  return {
    env: { DATABASE_URL: url },
    open: () => openPostgresStorage({ url, poolMax: 1 }),
    cleanup: async () => {
      await db?.drop();
    },
  };
});
