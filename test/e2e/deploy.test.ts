/**
 * The files in deploy/, checked without Docker or systemd running them:
 * the image's own steps in a clean folder, the systemd unit, the compose file.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  accessSync,
  constants,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join, relative } from "node:path";
import OpenAI from "openai";
import { loadConfig } from "../../src/config.ts";
import {
  applyEnv,
  copyArgs,
  execForm,
  parseDockerfile,
  type Stage,
} from "../harness/dockerfile.ts";
import { E2E_TIMEOUT_MS, freePort, masterKey, REPO_ROOT, waitFor } from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

/** A production install on two busy cores: npm ci alone may take a minute. */
const IMAGE_STEPS_TIMEOUT_MS = 240_000;
const DEFAULT_SHUTDOWN_MS = loadConfig({}).shutdownTimeoutMs;
const deployFile = (name: string) => readFileSync(join(REPO_ROOT, "deploy", name), "utf8");

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream();
});
afterAll(async () => {
  await mock.stop();
});

/** Seconds in a systemd or compose duration: `45`, `45s`, `1min 30s`, `1m30s`. */
function durationSeconds(text: string): number {
  const units: Record<string, number> = { "": 1, s: 1, sec: 1, m: 60, min: 60, h: 3600 };
  let total = 0;
  let matched = "";
  for (const m of text.trim().matchAll(/(\d+(?:\.\d+)?)\s*(min|sec|ms|s|m|h)?\s*/g)) {
    const unit = m[2] ?? "";
    total += unit === "ms" ? Number(m[1]) / 1000 : Number(m[1]) * (units[unit] ?? Number.NaN);
    matched += m[0];
  }
  if (matched.trim() !== text.trim() || !Number.isFinite(total))
    throw new Error(`not a duration: ${text}`);
  return total;
}

/** The first executable named `name` in a PATH-style list. */
function which(name: string, path: string): string | undefined {
  for (const dir of path.split(":")) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return undefined;
}

async function run(argv: string[], cwd: string, env: Record<string, string>) {
  const proc = Bun.spawn(argv, { cwd, env, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

describe("deploy/Dockerfile", () => {
  const stages = parseDockerfile(deployFile("Dockerfile"));
  const build = stages.find((s) => s.name === "build");
  const final = stages.at(-1) as Stage;
  const op = (stage: Stage, name: string) => stage.instructions.filter((i) => i.op === name);

  test("multi-stage, non-root, /data a volume, a health check, Bun as PID 1 in exec form", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(build).toBeDefined();
    expect(final).not.toBe(build);
    const user = op(final, "USER").at(-1)?.rest;
    expect(user).toBeDefined();
    expect(["root", "0"]).not.toContain(user?.split(":")[0]);
    expect(op(final, "VOLUME").map((v) => v.rest)).toContain("/data");
    const health = op(final, "HEALTHCHECK").at(-1)?.rest ?? "";
    expect(execForm(health.slice(health.indexOf("CMD")), "HEALTHCHECK")).toEqual([
      "bun",
      "src/cli/main.ts",
      "health",
    ]);
    const entry = execForm(op(final, "ENTRYPOINT").at(-1)?.rest ?? "", "ENTRYPOINT");
    // Signals reach the server directly: no npm, npx, shell or Node wrapper in between.
    expect(entry[0]).toBe("bun");
    expect(execForm(op(final, "CMD").at(-1)?.rest ?? "", "CMD")).toEqual(["serve"]);
    // Only production dependencies, installed before the sources are copied
    // (their layer stays cached when only the sources change), then built.
    const runs = op(build as Stage, "RUN").map((r) => r.rest);
    const installs = runs.filter((r) => /\bnpm ci\b/.test(r));
    expect(installs.length).toBe(1);
    expect(installs[0]).toMatch(/^npm ci .*--omit=dev/);
    const order = (build as Stage).instructions.map((i) => `${i.op} ${i.rest}`);
    const installAt = order.findIndex((line) => /^RUN npm ci\b/.test(line));
    const sourcesAt = order.findIndex((line) => /^COPY src\b/.test(line));
    expect(installAt).toBeGreaterThan(-1);
    expect(sourcesAt).toBeGreaterThan(installAt);
    expect(runs.at(-1)).toBe("npm run build");
  });

  test(
    "its own steps in a clean folder: production install, start, a key, a proxied call, ready, SIGTERM exits 0",
    async () => {
      if (!build) throw new Error("no build stage");
      const app = mkdtempSync(join(tmpdir(), "tollgate-image-"));
      const data = join(app, ".data-volume");
      let server: Bun.Subprocess<"ignore", "pipe", "pipe"> | undefined;
      try {
        // Stage 1, instruction by instruction.
        let workdir = "/";
        const inApp = (p: string) => {
          const abs = isAbsolute(p) ? p : join(workdir, p);
          const rel = relative("/app", abs);
          if (rel.startsWith("..")) throw new Error(`the test maps only /app, not ${abs}`);
          return join(app, rel);
        };
        const buildEnv: Record<string, string> = {
          PATH: process.env.PATH ?? "",
          HOME: process.env.HOME ?? app,
        };
        for (const i of build.instructions) {
          if (i.op === "FROM") continue;
          if (i.op === "WORKDIR") workdir = i.rest;
          else if (i.op === "COPY") {
            const c = copyArgs(i.rest);
            expect(c.from).toBeUndefined();
            for (const source of c.sources) {
              const target = c.dest.endsWith("/") ? join(inApp(c.dest), source) : inApp(c.dest);
              cpSync(join(REPO_ROOT, source), target, { recursive: true });
            }
          } else if (i.op === "RUN") {
            // The commands the image runs, joined by &&: each split into
            // words and run in turn, no shell.
            for (const command of i.rest.split(" && ")) {
              expect(command).toMatch(/^npm (ci( --[\w=-]+)+|rebuild bun|run build)$/);
              const r = await run(command.split(" "), inApp("."), buildEnv);
              if (r.code !== 0) throw new Error(`${command} failed (${r.code}): ${r.stderr}`);
            }
          } else throw new Error(`the test does not know how to replay ${i.op} ${i.rest}`);
        }
        expect(workdir).toBe("/app");

        // Stage 2: the same /app, its ENV, the volume, the user's command.
        expect(op(final, "COPY").map((c) => c.rest)).toContain("--from=build /app /app");
        const env: Record<string, string> = { PATH: process.env.PATH ?? "" };
        for (const e of op(final, "ENV")) applyEnv(e.rest, env);
        for (const [k, v] of Object.entries(env))
          env[k] = v.replaceAll("/app", app).replaceAll("/data", data);
        mkdirSync(data, { recursive: true, mode: 0o700 });
        const master = masterKey();
        const port = freePort();
        Object.assign(env, {
          // What an operator passes with `docker run -e`.
          UPSTREAM_API_KEY: master,
          UPSTREAM_OPENAI_URL: mock.openaiBase,
          UPSTREAM_ANTHROPIC_URL: mock.anthropicBase,
          PORT: String(port),
          HOST: "127.0.0.1",
        });
        expect(env.DATABASE_PATH).toBe(join(data, "tollgate.db"));
        expect(env.NODE_ENV).toBe("production");
        // The engine's heap sized for 128 MiB (docs/operations.md, Memory).
        expect(env.BUN_JSC_forceRAMSize).toBe("134217728");
        const cwd = inApp(op(final, "WORKDIR").at(-1)?.rest ?? "/");
        const entry = execForm(op(final, "ENTRYPOINT").at(-1)?.rest ?? "", "ENTRYPOINT");
        const cmd = execForm(op(final, "CMD").at(-1)?.rest ?? "", "CMD");
        const resolve = (argv: string[]) => {
          const exe = which(argv[0] as string, env.PATH ?? "");
          // The Bun of the production install, not one from the machine.
          expect(exe?.startsWith(app)).toBe(true);
          return [exe as string, ...argv.slice(1)];
        };
        let out = "";
        server = Bun.spawn(resolve([...entry, ...cmd]), {
          cwd,
          env,
          stdin: "ignore",
          stdout: "pipe",
          stderr: "pipe",
        });
        const proc = server;
        const pumped = Promise.all([
          (async () => {
            for await (const c of proc.stdout) out += new TextDecoder().decode(c);
          })(),
          (async () => {
            for await (const c of proc.stderr) out += new TextDecoder().decode(c);
          })(),
        ]);
        const base = `http://127.0.0.1:${port}`;
        const up = await waitFor(
          "the server to answer /health",
          async () => {
            if (proc.exitCode !== null) return "exited";
            return (await fetch(`${base}/health`)).status === 200 ? "up" : undefined;
          },
          60_000,
          100,
        );
        if (up === "exited") {
          await pumped;
          throw new Error(`the server exited during start-up (${proc.exitCode}):\n${out}`);
        }

        // A key, the way docs/deploy.md says: `tollgate` in the image is bin/tollgate.js.
        expect(
          op(final, "RUN").some((r) =>
            r.rest.includes("ln -s /app/bin/tollgate.js /usr/local/bin/tollgate"),
          ),
        ).toBe(true);
        const documented = /^docker exec tollgate tollgate (keys create .+)$/m.exec(
          readFileSync(join(REPO_ROOT, "docs", "deploy.md"), "utf8"),
        );
        expect(documented?.[1]).toBeDefined();
        const created = await run(
          [
            "node",
            join(app, "bin", "tollgate.js"),
            ...(documented?.[1] ?? "").split(" "),
            "--json",
          ],
          cwd,
          env,
        );
        if (created.code !== 0) throw new Error(`keys create failed: ${created.stderr}`);
        const key = (JSON.parse(created.stdout) as { key: string }).key;
        expect(key).toStartWith("pk_");

        // One proxied call through the official SDK, charged what the upstream reported.
        const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });
        const reply = await client.chat.completions.create({
          model: "glm-4.7",
          messages: [{ role: "user", content: "Hello" }],
        });
        expect(reply.choices[0]?.message.content?.length).toBeGreaterThan(0);
        expect(reply.usage?.total_tokens).toBeGreaterThan(0);
        expect(mock.requests.at(-1)?.headers.authorization).toBe(`Bearer ${master}`);
        const stats = await waitFor("the call to be charged", async () => {
          const s = (await (
            await fetch(`${base}/stats`, { headers: { authorization: `Bearer ${key}` } })
          ).json()) as { total_lifetime_tokens: number };
          return s.total_lifetime_tokens === reply.usage?.total_tokens ? s : undefined;
        });
        expect(stats.total_lifetime_tokens).toBe(reply.usage?.total_tokens as number);

        // Ready, by the route and by the image's own HEALTHCHECK command.
        const ready = await fetch(`${base}/health/ready`);
        expect(ready.status).toBe(200);
        const health = op(final, "HEALTHCHECK").at(-1)?.rest ?? "";
        const probe = await run(
          resolve(execForm(health.slice(health.indexOf("CMD")), "HEALTHCHECK")),
          cwd,
          env,
        );
        expect(probe.stderr).toBe("");
        expect(probe.code).toBe(0);

        // `docker stop`: SIGTERM to PID 1, which is the server itself.
        proc.kill("SIGTERM");
        const code = await Promise.race([
          proc.exited,
          Bun.sleep(DEFAULT_SHUTDOWN_MS + 15_000).then(() => "still running"),
        ]);
        await pumped;
        expect(code).toBe(0);
        expect(out).toContain("tollgate stopped");
        // The image serves from the build its install made (docs/operations.md, Memory).
        expect(out).toContain('"code":"build"');
        expect(out).not.toContain(key);
        expect(out).not.toContain(master);
      } finally {
        if (server && server.exitCode === null) server.kill("SIGKILL");
        rmSync(app, { recursive: true, force: true });
      }
    },
    IMAGE_STEPS_TIMEOUT_MS,
  );
});

/** `[Section]` → key → every value given (a key may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section?.[1]) {
      current = new Map();
      sections.set(section[1], current);
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!kv?.[1] || !current) throw new Error(`not a unit file line: ${line}`);
    current.set(kv[1], [...(current.get(kv[1]) ?? []), (kv[2] ?? "").trim()]);
  }
  return sections;
}

describe("deploy/tollgate.service", () => {
  const text = deployFile("tollgate.service");

  test("runs the server directly, stops it gently for longer than its shutdown, as its own user, hardened", () => {
    const service = parseUnit(text).get("Service");
    expect(service).toBeDefined();
    const one = (k: string) => service?.get(k)?.at(-1);
    const exec = (one("ExecStart") ?? "").split(/\s+/);
    expect(exec[0]).toEndWith("/node_modules/.bin/bun");
    expect(exec.slice(1)).toEqual([expect.stringMatching(/\/src\/cli\/main\.ts$/), "serve"]);
    expect(exec.join(" ")).not.toMatch(/\bnpm\b|\bnpx\b|tollgate\.js/);
    expect(one("KillMode")).toBe("mixed");
    // The engine's heap sized for 128 MiB, which the EnvironmentFile may override.
    expect(service?.get("Environment")).toContain("BUN_JSC_forceRAMSize=134217728");
    expect(durationSeconds(one("TimeoutStopSec") ?? "") * 1000).toBeGreaterThan(
      DEFAULT_SHUTDOWN_MS,
    );
    expect(one("User") ?? (one("DynamicUser") === "yes" ? "dynamic" : undefined)).toBeDefined();
    expect(one("User")).not.toBe("root");
    expect(one("StateDirectory")).toBe("tollgate");
    expect(one("NoNewPrivileges")).toBe("yes");
    expect(one("ProtectSystem")).toBe("strict");
    expect(one("PrivateTmp")).toBe("yes");
  });

  test("systemd-analyze verify finds nothing wrong (pointed at an installed copy)", async () => {
    const analyze = Bun.which("systemd-analyze");
    if (!analyze) {
      console.warn(
        "\n*** systemd-analyze is not installed: deploy/tollgate.service was NOT verified by systemd, " +
          "only read by this test (the keys above). Install systemd to verify it. ***\n",
      );
      // It parses as a unit, with the sections systemd needs; its keys are checked above.
      const unit = parseUnit(text);
      expect([...unit.keys()]).toEqual(["Unit", "Service", "Install"]);
      expect(unit.get("Service")?.get("ExecStart")).toHaveLength(1);
      expect(unit.get("Install")?.get("WantedBy")).toEqual(["multi-user.target"]);
      return;
    }
    // ExecStart must name a program that exists: this checkout stands in for /opt/tollgate.
    const dir = mkdtempSync(join(tmpdir(), "tollgate-unit-"));
    try {
      const unit = join(dir, "tollgate.service");
      await Bun.write(unit, text.replaceAll("/opt/tollgate", REPO_ROOT.replace(/\/$/, "")));
      const r = await run([analyze, "verify", unit], dir, { PATH: process.env.PATH ?? "" });
      expect(r.stderr + r.stdout).toBe("");
      expect(r.code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("deploy/compose.yaml", () => {
  const text = deployFile("compose.yaml");
  type Service = {
    image?: string;
    build?: { context: string; dockerfile: string };
    deploy?: { replicas?: number };
    environment?: Record<string, string>;
    volumes?: string[];
    command?: string[];
    stop_grace_period?: string;
    depends_on?: Record<string, { condition: string }>;
  };
  const compose = Bun.YAML.parse(text) as {
    services: Record<string, Service>;
    volumes: Record<string, unknown>;
  };

  test("PostgreSQL with a named volume, two gateway replicas on it, each with its own journal", () => {
    const { postgres, tollgate } = compose.services;
    expect(postgres?.image).toStartWith("postgres:");
    expect(Object.keys(compose.volumes)).toContain("pgdata");
    expect(postgres?.volumes).toContain("pgdata:/var/lib/postgresql/data");
    expect(tollgate?.deploy?.replicas).toBe(2);
    expect(tollgate?.build?.dockerfile).toBe("deploy/Dockerfile");
    expect(tollgate?.environment?.DATABASE_URL).toMatch(
      /^postgres:\/\/tollgate:.+@postgres:5432\/tollgate$/,
    );
    // No shared volume at /data: the journal must be one per replica, and the file says so.
    expect((tollgate?.volumes ?? []).some((v) => v.split(":")[1] === "/data")).toBe(false);
    expect(tollgate?.environment?.JOURNAL_DIR).toBe("/data/journal");
    expect(text).toMatch(/JOURNAL_DIR must be one per replica/);
    expect(durationSeconds(tollgate?.stop_grace_period ?? "") * 1000).toBeGreaterThan(
      DEFAULT_SHUTDOWN_MS,
    );
  });

  test("scheduled backups with the project's own CLI into a named volume", () => {
    const backup = compose.services.backup;
    expect(Object.keys(compose.volumes)).toContain("backups");
    expect(backup?.volumes).toContain("backups:/data/backups");
    expect(backup?.image).toBe(compose.services.tollgate?.image as string);
    const loop = backup?.command?.join("\n") ?? "";
    expect(loop).toContain("tollgate backup --format logical");
    expect(loop).toMatch(/sleep .*BACKUP_INTERVAL_SECONDS/);
    // The first backup waits for gateways that have applied the schema.
    expect(backup?.depends_on?.tollgate?.condition).toBe("service_healthy");
  });
});
