import { describe, expect, test } from "bun:test";
import { ConfigError, loadConfig } from "./config.ts";

describe("loadConfig", () => {
  test("defaults match the documented ones", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 3000,
      host: "0.0.0.0",
      upstreamApiKey: undefined,
      upstreamOpenaiUrl: "https://api.z.ai/api/coding/paas/v4",
      upstreamAnthropicUrl: "https://api.z.ai/api/anthropic",
      defaultModel: "glm-4.7",
      storage: { type: "sqlite", path: "./data/tollgate.db" },
      journalDir: "data/journal",
      maxBodyBytes: 32 * 1024 * 1024,
      bodyTimeoutMs: 60_000,
      idleTimeoutSeconds: 60,
      upstreamTimeoutMs: 600_000,
      logLevel: "info",
      corsOrigins: ["*"],
      adminApiKey: undefined,
      usageRetentionDays: 30,
      trustedProxies: [],
    });
  });

  test("TRUSTED_PROXIES: addresses and CIDR ranges, IPv4 and IPv6, comma-separated", () => {
    expect(
      loadConfig({ TRUSTED_PROXIES: " 10.0.0.0/8, 192.168.1.10 ,::1,fd00::/8," }).trustedProxies,
    ).toEqual(["10.0.0.0/8", "192.168.1.10", "::1", "fd00::/8"]);
  });

  test("the admin surface is on only with a long enough ADMIN_API_KEY", () => {
    expect(loadConfig({ ADMIN_API_KEY: "" }).adminApiKey).toBeUndefined();
    const key = "a".repeat(16);
    expect(loadConfig({ ADMIN_API_KEY: ` ${key} ` }).adminApiKey).toBe(key);
    expect(loadConfig({ USAGE_RETENTION_DAYS: "90" }).usageRetentionDays).toBe(90);
    expect(loadConfig({}).auditRetentionDays).toBeUndefined();
    expect(loadConfig({ AUDIT_RETENTION_DAYS: "365" }).auditRetentionDays).toBe(365);
  });

  test("ZAI_API_KEY is an alias; UPSTREAM_API_KEY wins", () => {
    expect(loadConfig({ ZAI_API_KEY: "z" }).upstreamApiKey).toBe("z");
    expect(loadConfig({ ZAI_API_KEY: "z", UPSTREAM_API_KEY: "u" }).upstreamApiKey).toBe("u");
  });

  test("trailing slashes on upstream URLs are dropped; empty values mean unset", () => {
    const c = loadConfig({ UPSTREAM_OPENAI_URL: "http://x/v4/", PORT: "", LOG_LEVEL: "WARN" });
    expect(c.upstreamOpenaiUrl).toBe("http://x/v4");
    expect(c.port).toBe(3000);
    expect(c.logLevel).toBe("warn");
  });

  test("the journal sits beside the SQLite file unless told otherwise", () => {
    expect(loadConfig({ DATABASE_PATH: "/srv/tg/db.sqlite" }).journalDir).toBe("/srv/tg/journal");
    expect(loadConfig({ JOURNAL_DIR: "/j" }).journalDir).toBe("/j");
  });

  const bad: Array<[Record<string, string>, string]> = [
    [{ PORT: "abc" }, "PORT"],
    [{ PORT: "70000" }, "PORT"],
    [{ MAX_BODY_BYTES: "-1" }, "MAX_BODY_BYTES"],
    [{ IDLE_TIMEOUT_SECONDS: "256" }, "IDLE_TIMEOUT_SECONDS"],
    [{ BODY_TIMEOUT_MS: "0" }, "BODY_TIMEOUT_MS"],
    [{ UPSTREAM_OPENAI_URL: "not a url" }, "UPSTREAM_OPENAI_URL"],
    [{ UPSTREAM_OPENAI_URL: "file:///etc/passwd" }, "UPSTREAM_OPENAI_URL"],
    [{ UPSTREAM_ANTHROPIC_URL: "https://user:pw@host/a" }, "UPSTREAM_ANTHROPIC_URL"],
    [{ LOG_LEVEL: "loud" }, "LOG_LEVEL"],
    [{ STORAGE_TYPE: "mongo" }, "STORAGE_TYPE"],
    [{ STORAGE_TYPE: "postgres" }, "DATABASE_URL"],
    [{ DATABASE_URL: "mysql://x" }, "DATABASE_URL"],
    [{ ADMIN_API_KEY: "short" }, "ADMIN_API_KEY"],
    [{ USAGE_RETENTION_DAYS: "0" }, "USAGE_RETENTION_DAYS"],
    [{ USAGE_RETENTION_DAYS: "ten" }, "USAGE_RETENTION_DAYS"],
    [{ AUDIT_RETENTION_DAYS: "0" }, "AUDIT_RETENTION_DAYS"],
    [{ AUDIT_RETENTION_DAYS: "a year" }, "AUDIT_RETENTION_DAYS"],
    // Could never be sent as `Authorization: Bearer <key>`.
    [{ ADMIN_API_KEY: "correct horse battery staple" }, "ADMIN_API_KEY"],
    [{ ADMIN_API_KEY: "0123456789abcdef\t0123" }, "ADMIN_API_KEY"],
    [{ TRUSTED_PROXIES: "10.0.0.0/33" }, "TRUSTED_PROXIES"],
    [{ TRUSTED_PROXIES: "10.0.0.1, proxy.internal" }, "TRUSTED_PROXIES"],
    [{ TRUSTED_PROXIES: "10.0.0.256" }, "TRUSTED_PROXIES"],
  ];
  // What each says, in words a person can act on.
  const said: Array<[Record<string, string>, string]> = [
    [{ PORT: "abc" }, "invalid configuration: PORT: must be a number (a whole number, e.g. 3000)"],
    [{ PORT: "70000" }, "invalid configuration: PORT: must be a port number up to 65535"],
    [{ MAX_BODY_BYTES: "-1" }, "invalid configuration: MAX_BODY_BYTES: must be at least 1"],
    [
      { UPSTREAM_OPENAI_URL: "ftp://x/v1" },
      "UPSTREAM_OPENAI_URL: must start with http:// or https://",
    ],
    [{ UPSTREAM_OPENAI_URL: "https://u:p@x/v1" }, "UPSTREAM_OPENAI_URL: must not hold credentials"],
    [
      { UPSTREAM_ANTHROPIC_URL: "https://x/a?k=1" },
      "UPSTREAM_ANTHROPIC_URL: must not have a query",
    ],
    [
      { UPSTREAM_ANTHROPIC_URL: "https://x/a#top" },
      "UPSTREAM_ANTHROPIC_URL: must not have a fragment",
    ],
    [{ DATABASE_URL: "mysql://u@h/db" }, "DATABASE_URL: the scheme mysql:// is not supported"],
  ];
  for (const [env, text] of said) {
    test(`${JSON.stringify(env)} says: ${text}`, () => {
      expect(() => loadConfig(env)).toThrow(text);
      expect(() => loadConfig(env)).not.toThrow("STORAGE_TYPE");
    });
  }

  for (const [env, name] of bad) {
    test(`invalid ${name} stops start-up with a line naming it (${JSON.stringify(env)})`, () => {
      expect(() => loadConfig(env)).toThrow(ConfigError);
      try {
        loadConfig(env);
      } catch (err) {
        expect((err as Error).message).toStartWith(`invalid configuration: ${name}:`);
        expect((err as Error).message).not.toContain("\n");
      }
    });
  }
});

test("endpoint and header settings are checked at start-up, naming the variable", () => {
  expect(() => loadConfig({ EXTRA_PATHS: "/v1/files,files" })).toThrow(/EXTRA_PATHS/);
  expect(() => loadConfig({ EXTRA_REQUEST_HEADERS: "x-forwarded-for" })).toThrow(
    /EXTRA_REQUEST_HEADERS/,
  );
  expect(() => loadConfig({ ALLOWED_ANTHROPIC_BETAS: "a b" })).toThrow(/ALLOWED_ANTHROPIC_BETAS/);
  const c = loadConfig({
    EXTRA_PATHS: "/v1/moderations",
    EXTRA_REQUEST_HEADERS: "X-Team",
    ALLOWED_ANTHROPIC_BETAS: "b1,b2",
  });
  expect(c.extraPaths).toEqual(["/v1/moderations"]);
  expect(c.extraRequestHeaders).toEqual(["x-team"]);
  expect(c.allowedAnthropicBetas).toEqual(["b1", "b2"]);
  expect(loadConfig({}).allowedAnthropicBetas).toBeNull();
});

describe("the upstream plan and its fair queue", () => {
  test("unset: no limit, a 60 s queue timeout, no plan declared", () => {
    expect(loadConfig({})).toMatchObject({
      upstreamMaxConcurrency: null,
      upstreamQueueTimeoutMs: 60_000,
      plan: { fiveHour: null, weekly: null },
    });
  });

  test("set: read as whole numbers", () => {
    const c = loadConfig({
      UPSTREAM_MAX_CONCURRENCY: "2",
      UPSTREAM_QUEUE_TIMEOUT_MS: "5000",
      UPSTREAM_PLAN_5H: "4000000",
      UPSTREAM_PLAN_WEEKLY: "40000000",
    });
    expect(c.upstreamMaxConcurrency).toBe(2);
    expect(c.upstreamQueueTimeoutMs).toBe(5000);
    expect(c.plan).toEqual({ fiveHour: 4_000_000, weekly: 40_000_000 });
  });

  test.each([
    ["UPSTREAM_MAX_CONCURRENCY", "0"],
    ["UPSTREAM_MAX_CONCURRENCY", "two"],
    ["UPSTREAM_QUEUE_TIMEOUT_MS", "0"],
    ["UPSTREAM_PLAN_5H", "-5"],
    ["UPSTREAM_PLAN_WEEKLY", "1.5"],
  ])("%s=%s stops start-up with a line naming it", (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });
});
