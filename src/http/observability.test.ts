import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { makeTestApp } from "../../test/harness/app.ts";
import { type MockUpstream, startMockUpstream } from "../../test/harness/mock-upstream.ts";

let mock: MockUpstream;
let t: Awaited<ReturnType<typeof makeTestApp>>;

beforeAll(async () => {
  mock = await startMockUpstream();
  t = await makeTestApp({
    UPSTREAM_OPENAI_URL: mock.openaiBase,
    UPSTREAM_ANTHROPIC_URL: mock.anthropicBase,
    METRICS_TOKEN: "scrape-token",
  });
});
afterAll(async () => {
  await t.cleanup();
  await mock.stop();
});

const chat = (key: string) =>
  t.app.request("/v1/chat/completions", {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: '{"messages":[]}',
  });

describe("/metrics", () => {
  test("wants the METRICS_TOKEN when one is set", async () => {
    expect((await t.app.request("/metrics")).status).toBe(401);
    const wrong = await t.app.request("/metrics", { headers: { authorization: "Bearer nope" } });
    expect(wrong.status).toBe(401);
  });

  test("counts requests, tokens, quota rejections and cache lookups, never by key", async () => {
    const { secret } = await t.newKey({ tokenLimit: 20 });
    expect((await chat(secret)).status).toBe(200);
    expect((await chat(secret)).status).toBe(200);
    expect((await chat(secret)).status).toBe(429);
    const r = await t.app.request("/metrics", {
      headers: { authorization: "Bearer scrape-token" },
    });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toContain("text/plain");
    const text = await r.text();
    const value = (series: string) => {
      const line = text.split("\n").find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    expect(
      value(
        'tollgate_http_requests_total{route="/v1/chat/completions",status="200",dialect="openai"}',
      ),
    ).toBe(2);
    // 16, then 12: the second went upstream capped to the 1 output token left room for.
    expect(value('tollgate_tokens_charged_total{dialect="openai"}')).toBe(28);
    expect(value('tollgate_quota_rejections_total{dialect="openai"}')).toBe(1);
    expect(value('tollgate_key_cache_lookups_total{result="hit"}')).toBeGreaterThanOrEqual(2);
    expect(value("tollgate_usage_backlog_events")).toBeGreaterThanOrEqual(0);
    expect(value("tollgate_storage_up")).toBe(1);
    expect(text).toContain("tollgate_upstream_ttfb_seconds_bucket");
    expect(text).toContain("tollgate_process_resident_memory_bytes");
    expect(text).not.toContain(secret.slice(0, 10));
  });
});

describe("/health/ready", () => {
  test("ok while the database answers", async () => {
    const r = await t.app.request("/health/ready");
    expect(r.status).toBe(200);
    const body = (await r.json()) as {
      status: string;
      storage: { kind: string; reachable: boolean; latency_ms: number };
    };
    expect(body.status).toBe("ok");
    expect(body.storage).toMatchObject({ kind: "sqlite", reachable: true });
    expect(body.storage.latency_ms).toBeGreaterThanOrEqual(0);
  });
});
