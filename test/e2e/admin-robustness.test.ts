import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { makeTestApp } from "../harness/app.ts";
import { E2E_TIMEOUT_MS } from "../harness/gateway.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

// The admin API in process, where a test can reach what a real server hides:
// per-request client addresses (for timing without the attempt limit) and a
// database that goes away.

const ADMIN_KEY = `adm_${"7".repeat(8000)}`;
let t: Awaited<ReturnType<typeof makeTestApp>>;

beforeAll(async () => {
  t = await makeTestApp({ ADMIN_API_KEY: ADMIN_KEY });
});
afterAll(async () => {
  await t.cleanup().catch(() => {});
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;

describe("admin key comparison over HTTP", () => {
  // What this can and cannot see: a request costs a few hundred microseconds
  // here, and comparing even this 8000-character key character by character
  // would differ by well under one, so a per-character leak is far below this
  // test's resolution (src/admin/admin-key.test.ts measures that, on the
  // comparison alone). This one catches gross differences only: a path that
  // does extra work for one kind of wrong key (a lookup, a log line with more
  // in it, a hash of one guess but not the other) shows up here.
  test("no gross difference over HTTP between wrong keys sharing a long prefix with the real one and keys sharing none", async () => {
    // Each request comes from its own (made-up) address, so the failed-attempt
    // limit never answers in place of the comparison being measured.
    let n = 0;
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (req) => {
        n++;
        const address = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
        return t.app.fetch(req, { requestIP: () => ({ address, family: "IPv4", port: 1 }) });
      },
    });
    try {
      const url = `http://127.0.0.1:${server.port}/admin/keys`;
      const sharing = `${ADMIN_KEY.slice(0, -1)}8`;
      const none = `x${"8".repeat(ADMIN_KEY.length - 1)}`;
      const time = async (key: string) => {
        const t0 = performance.now();
        const res = await fetch(url, { headers: { authorization: `Bearer ${key}` } });
        await res.arrayBuffer();
        expect(res.status).toBe(401);
        return performance.now() - t0;
      };
      for (let i = 0; i < 50; i++) await time(i % 2 ? sharing : none); // warm up
      const a: number[] = [];
      const b: number[] = [];
      // Interleaved, in alternating order, so drift in machine load hits both alike.
      for (let i = 0; i < 300; i++) {
        if (i % 2) {
          a.push(await time(sharing));
          b.push(await time(none));
        } else {
          b.push(await time(none));
          a.push(await time(sharing));
        }
      }
      const [ma, mb] = [median(a), median(b)];
      // Over HTTP on a busy 2-core machine the medians of identical requests
      // can drift apart by tens of percent; the bound measures the code, not
      // the machine: it catches a gross leak (a lookup or an early return
      // taken for one key and not the other), while the constant-time
      // comparison itself is held to a tight bound in-process
      // (src/admin/admin-key.test.ts).
      expect(Math.abs(ma - mb)).toBeLessThan(0.5 * Math.min(ma, mb) + 0.1);
    } finally {
      server.stop(true);
    }
  });
});

describe("database out", () => {
  test("/stats/usage answers 503 at once while storage is known to be out, not after the database times out", async () => {
    const k = await t.newKey({ name: "holder-in-outage" });
    const auth = { authorization: `Bearer ${k.secret}` };
    // Seen once, so the key is known in memory and /stats keeps answering.
    expect((await t.app.request("/stats", { headers: auth })).status).toBe(200);
    const storage = t.storage as unknown as Record<string, unknown>;
    let historyQueries = 0;
    // A database that has gone away: pings fail, queries hang.
    storage.ping = () => Promise.reject(new Error("connect ECONNREFUSED"));
    storage.usageBetween = () => {
      historyQueries++;
      return new Promise(() => {});
    };
    t.health.reportFailure(new Error("connect ECONNREFUSED"));
    expect(t.health.degraded).toBe(true);
    const started = performance.now();
    const res = await Promise.race([
      t.app.request("/stats/usage?step=1h", { headers: auth }),
      Bun.sleep(3000).then(() => "no answer within 3 s"),
    ]);
    if (typeof res === "string") throw new Error(res);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({
      error: {
        message: "usage history is unavailable; try again shortly",
        type: "server_error",
        code: "storage_unavailable",
      },
    });
    expect(performance.now() - started).toBeLessThan(1000);
    expect(historyQueries).toBe(0);
    // /stats still answers from memory.
    expect((await t.app.request("/stats", { headers: auth })).status).toBe(200);
  });

  test("admin calls answer 503 storage_unavailable, never a stack trace", async () => {
    const auth = { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" };
    const k = await t.newKey({ name: "before-outage" });
    // Every call fails as with a lost database (ping included).
    const storage = t.storage as unknown as Record<string, unknown>;
    for (const name of [
      "ping",
      "listKeys",
      "getKeyById",
      "createKey",
      "countKeys",
      "usageBetween",
      "usageByKey",
      "usageSince",
    ]) {
      storage[name] = () => Promise.reject(new Error("SQLITE_IOERR: disk I/O error"));
    }
    for (const [method, path, body] of [
      ["GET", "/admin/keys", undefined],
      ["GET", `/admin/keys/${k.record.id}`, undefined],
      ["POST", "/admin/keys", JSON.stringify({ name: "x", token_limit_per_5h: 1 })],
      ["GET", "/admin/usage", undefined],
    ] as const) {
      const res = await t.app.request(path, { method, headers: auth, body });
      const text = await res.text();
      expect(res.status).toBe(503);
      expect(JSON.parse(text)).toEqual({
        error: {
          code: "storage_unavailable",
          message: "the database cannot be reached; try again shortly",
        },
      });
      expect(text).not.toMatch(/\.ts:\d+|\n\s+at /);
    }
  });
});
