import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  freePort,
  GatewayProcess,
  REPO_ROOT,
} from "../harness/gateway.ts";
import { legacyKeySecret, makeLegacyFile } from "../harness/legacy.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream();
});
afterAll(async () => {
  await mock.stop();
});

describe("start-up", () => {
  test("an unreachable PostgreSQL is retried with backoff, then the server exits with one clear line", async () => {
    const port = freePort(); // nothing listens there
    const started = performance.now();
    const proc = Bun.spawn([process.execPath, "src/cli/main.ts", "serve"], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH ?? "",
        HOST: "127.0.0.1",
        PORT: String(freePort()),
        DATABASE_URL: `postgres://tollgate:s3cret-password@127.0.0.1:${port}/tollgate`,
        DATABASE_CONNECT_ATTEMPTS: "4",
        DATABASE_CONNECT_BACKOFF_MS: "50",
      },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    expect(code).toBe(1);
    expect(performance.now() - started).toBeLessThan(10_000);
    const lines = err.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe(
      `error: could not reach PostgreSQL at 127.0.0.1:${port}/tollgate after 4 attempts: connect ECONNREFUSED 127.0.0.1:${port}`,
    );
    const retries = out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { msg: string; attempt: number; waitMs: number });
    expect(retries.map((r) => r.attempt)).toEqual([1, 2, 3]);
    expect(retries.every((r) => r.msg === "database not reachable yet; retrying")).toBe(true);
    // The password never shows, in the error or the logs.
    expect(out + err).not.toContain("s3cret-password");
  });

  test("a second gateway on a port in use refuses to start; the first keeps every connection", async () => {
    const first = new GatewayProcess({ mock });
    const other = mkdtempSync(join(tmpdir(), "tollgate-second-"));
    let second: ReturnType<typeof Bun.spawn> | undefined;
    try {
      await first.start();
      const { key } = await first.createKey({ name: "alice", limit: 1_000_000 });
      const port = new URL(first.url).port;
      // Another gateway, with its own database (where alice's key does not
      // exist), started on the same port by mistake.
      second = Bun.spawn([process.execPath, "src/cli/main.ts", "serve"], {
        cwd: REPO_ROOT,
        env: {
          PATH: process.env.PATH ?? "",
          HOST: "127.0.0.1",
          PORT: port,
          DATABASE_PATH: join(other, "tollgate.db"),
          UPSTREAM_API_KEY: "second-gateway-upstream-key",
          LOG_LEVEL: "warn",
        },
        stdout: "pipe",
        stderr: "pipe",
      });
      const code = await Promise.race([second.exited, Bun.sleep(5000).then(() => "still running")]);
      // Every new connection reaches the first gateway: alice's key works on
      // each. Each request opens its own connection (an SDK's keep-alive
      // would reuse one, which the kernel hands to one listener only).
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++) {
        const res = await fetch(`${first.url}/v1/chat/completions`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${key}`,
            "content-type": "application/json",
            connection: "close",
          },
          body: JSON.stringify({ model: "glm-4.7", messages: [{ role: "user", content: "hi" }] }),
        });
        await res.arrayBuffer();
        statuses.push(res.status);
      }
      second.kill("SIGKILL");
      expect(statuses).toEqual(Array(20).fill(200));
      expect(code).toBe(1);
      expect((await new Response(second.stderr as ReadableStream).text()).trim()).toBe(
        `error: cannot listen on 127.0.0.1:${port}: the port is in use by another process (another gateway?); stop that one or choose another PORT`,
      );
      expect((await first.stats(key)).total_requests).toBe(20);
    } finally {
      second?.kill("SIGKILL");
      rmSync(other, { recursive: true, force: true });
      await first.close();
    }
  });

  test("`tollgate health` asks a running gateway and says whether it serves", async () => {
    const g = new GatewayProcess({ mock });
    try {
      await g.start();
      const up = await g.cli(["health", "--url", g.url]);
      expect(up.code).toBe(0);
      expect(up.stdout).toStartWith("ok: database reachable");
      await g.stop();
      const down = await g.cli(["health", "--url", g.url]);
      expect(down.code).toBe(1);
      expect(down.stderr).toStartWith(`error: no answer from ${g.url}`);
    } finally {
      await g.close();
    }
  });

  test("scheduled backups run in the server and show in readiness and metrics", async () => {
    const g = new GatewayProcess({
      mock,
      env: { BACKUP_ENABLED: "true", BACKUP_SCHEDULE: "* * * * * *", BACKUP_RETAIN: "2" },
    });
    try {
      await g.start();
      let ready: {
        backup?: { scheduled: boolean; last: { status: string; file?: string } | null };
      } = {};
      for (let i = 0; i < 50; i++) {
        ready = (await (await g.fetch("/health/ready")).json()) as typeof ready;
        if (ready.backup?.last?.status === "ok") break;
        await Bun.sleep(100);
      }
      expect(ready.backup?.scheduled).toBe(true);
      expect(ready.backup?.last?.status).toBe("ok");
      const metrics = await (await g.fetch("/metrics")).text();
      expect(metrics).toContain("tollgate_backup_last_ok 1");
      const verify = await g.cli(["backup", "verify", String(ready.backup?.last?.file)]);
      expect(verify.code).toBe(0);
    } finally {
      await g.close();
    }
  });

  test("the legacy file backend serves the old apikeys.json in place and points at migrate", async () => {
    const g = new GatewayProcess({ mock });
    try {
      const file = join(g.dir, "apikeys.json");
      writeFileSync(file, JSON.stringify(makeLegacyFile({ keys: 3, now: Date.now() })));
      const served = new GatewayProcess({ mock, env: { STORAGE_TYPE: "file", DATA_FILE: file } });
      try {
        await served.start();
        const hint = served.logLines().find((l) => l.level === "warn");
        expect(String(hint?.msg)).toContain(
          `STORAGE_TYPE=sqlite npx tollgate migrate --file ${file}`,
        );
        const r = await served.fetch("/v1/chat/completions", {
          method: "POST",
          headers: {
            authorization: `Bearer ${legacyKeySecret(1)}`,
            "content-type": "application/json",
          },
          body: JSON.stringify({ model: "glm-4.7", messages: [] }),
        });
        expect(r.status).toBe(200);
        const s = await served.statsWhen(legacyKeySecret(1), { tokens: 5_001 + 16 }, 2000);
        expect(s.current_usage.tokens_used_in_current_window).toBe(101 + 16);
      } finally {
        await served.close();
      }
    } finally {
      await g.close();
    }
  });
});

test("the secret sweep: every gateway's log is non-empty and holds no master, admin or client key", () => {
  expectNoSecretsInLogs();
});
