/**
 * Runs the real gateway (`bun src/cli/main.ts serve`) as a separate process
 * over real HTTP, in a fresh temporary data directory, and drives its CLI with
 * the same database. Everything the process prints is kept in memory, across
 * restarts, so tests can assert on the logs.
 *
 *   const gw = await startGateway({ mock });
 *   const { key } = await gw.createKey({ name: "alice", limit: 1000 });
 *   ...
 *   await gw.close();
 */

import { expect } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { MOCK_CONTROL_HEADERS } from "./mock-upstream.ts";

export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
/**
 * The CLI, by its full path: gateways and CLI commands run in their own data
 * folder, not the checkout, since the runtime loads `./.env` from where it
 * runs, and an operator who followed the quick start has one there, with
 * their own upstream key and settings.
 */
const CLI_ENTRY = join(REPO_ROOT, "src", "cli", "main.ts");

const STARTUP_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 30_000;
const CLI_TIMEOUT_MS = 30_000;

/** Where the gateway sends upstream calls; a MockUpstream fits. */
export interface UpstreamBases {
  openaiBase: string;
  anthropicBase: string;
}

export interface GatewayOptions {
  /** The upstream to point at (usually the mock). */
  mock?: UpstreamBases;
  /** Extra environment; a value of `undefined` removes the variable. */
  env?: Record<string, string | undefined>;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CreateKeyOptions {
  name: string;
  limit: number | string;
  model?: string;
  expires?: string;
  /** `--concurrency`: requests the key may have in flight at once. */
  concurrency?: number;
  /** `--weekly-limit`: tokens per rolling 7 days. */
  weeklyLimit?: number;
  /** `--models`: names or globs, comma-separated. */
  models?: string;
}

/** What `keys create --json` prints. */
export interface CreatedKey {
  id: string;
  /** The secret, shown once. */
  key: string;
  name: string;
  prefix: string;
  token_limit_per_5h: number;
  model: string | null;
  expires_at: string | null;
  disabled: boolean;
  created_at: string;
  last_used: string | null;
  total_lifetime_tokens: number;
  total_requests: number;
}

/** The documented `GET /stats` body. */
export interface Stats {
  key: string;
  name: string;
  model: string;
  token_limit_per_5h: number;
  expiry_date: string | null;
  created_at: string;
  last_used: string | null;
  is_expired: boolean;
  is_disabled: boolean;
  current_usage: {
    tokens_used_in_current_window: number;
    window_started_at: string;
    window_ends_at: string;
    remaining_tokens: number;
  };
  total_lifetime_tokens: number;
  total_requests: number;
  /** The key's history per model, read from the database (null while it is out). */
  usage_by_model: { currency: string | null; models: Array<{ model: string }> } | null;
}

/** A master key nobody could mistake for anything else, so logs can be searched for it. */
export function masterKey(): string {
  return `sk-MASTER-tollgate-e2e-${crypto.randomUUID().replaceAll("-", "")}`;
}

/**
 * What an operator's shell holds to start a gateway on `port` against
 * `mock`, with its SQLite file in `dir`, and nothing else from ours.
 */
export function operatorEnv(
  mock: { openaiBase: string; anthropicBase: string },
  port: number,
  dir: string,
): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    TMPDIR: process.env.TMPDIR ?? tmpdir(),
    HOST: "127.0.0.1",
    PORT: String(port),
    DATABASE_PATH: join(dir, "tollgate.db"),
    UPSTREAM_API_KEY: masterKey(),
    UPSTREAM_OPENAI_URL: mock.openaiBase,
    UPSTREAM_ANTHROPIC_URL: mock.anthropicBase,
  };
}

/** Runs `bun src/cli/main.ts <args>` with `env`, in `cwd` (killed after 30 s). */
export function runCli(
  args: string[],
  o: { cwd: string; env: Record<string, string> },
): Promise<CliResult> {
  return runCommand([process.execPath, CLI_ENTRY, ...args], o);
}

/** `cmd` run to its end (killed after CLI_TIMEOUT_MS), its output gathered. */
export async function runCommand(
  cmd: string[],
  o: { cwd: string; env: Record<string, string> },
): Promise<CliResult> {
  const proc = Bun.spawn(cmd, {
    cwd: o.cwd,
    env: o.env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    timeout: CLI_TIMEOUT_MS,
    killSignal: "SIGKILL",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

/** A command that must succeed, run from the repository: its output; a failure throws with its stderr. */
export async function cliOutput(env: Record<string, string>, args: string[]): Promise<string> {
  const r = await runCli(args, { cwd: REPO_ROOT, env });
  if (r.code !== 0) throw new Error(`tollgate ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

/** A port nothing listens on right now (bound once, then released). */
export function freePort(): number {
  const probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = probe.port;
  void probe.stop(true);
  if (port === undefined) throw new Error("could not pick a free port");
  return port;
}

/** Polls `check` until it returns a value that is not undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 2000,
  everyMs = 25,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (performance.now() > deadline) {
      const why = last instanceof Error ? `: ${last.message}` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await Bun.sleep(everyMs);
  }
}

async function pump(stream: ReadableStream<Uint8Array>, sink: (text: string) => void) {
  const decoder = new TextDecoder();
  for await (const chunk of stream) sink(decoder.decode(chunk, { stream: true }));
  const rest = decoder.decode();
  if (rest) sink(rest);
}

type Proc = Bun.Subprocess<"ignore", "pipe", "pipe">;

/** Gateways still running: if the test process ends without closing them, they go with it. */
const live = new Set<Proc>();
process.on("exit", () => {
  for (const proc of live) proc.kill("SIGKILL");
});

export class GatewayProcess {
  readonly dir: string;
  readonly dbPath: string;
  readonly masterKey: string;
  /** Every secret this harness created or rotated: none may ever show up in the logs. */
  readonly secrets: string[] = [];
  private port: number;
  private proc: Proc | undefined;
  private pumps: Promise<void>[] = [];
  private out = "";
  private err = "";
  private readonly env: Record<string, string>;

  constructor(options: GatewayOptions = {}) {
    everyGateway.add(this);
    this.dir = mkdtempSync(join(tmpdir(), "tollgate-e2e-"));
    this.dbPath = join(this.dir, "tollgate.db");
    this.port = freePort();
    const given = options.env ?? {};
    this.masterKey = given.UPSTREAM_API_KEY ?? masterKey();
    const env: Record<string, string | undefined> = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TMPDIR: process.env.TMPDIR,
      HOST: "127.0.0.1",
      DATABASE_PATH: this.dbPath,
      UPSTREAM_API_KEY: this.masterKey,
      LOG_LEVEL: "info",
      ...(options.mock
        ? {
            UPSTREAM_OPENAI_URL: options.mock.openaiBase,
            UPSTREAM_ANTHROPIC_URL: options.mock.anthropicBase,
            EXTRA_REQUEST_HEADERS: MOCK_CONTROL_HEADERS,
          }
        : {}),
      ...given,
    };
    this.env = Object.fromEntries(
      Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined),
    );
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Everything the gateway wrote to stdout, over every run. */
  get stdout(): string {
    return this.out;
  }

  get stderr(): string {
    return this.err;
  }

  /** Stdout lines that are JSON objects (the structured log). */
  logLines(): Array<Record<string, unknown>> {
    const lines: Array<Record<string, unknown>> = [];
    for (const line of this.out.split("\n")) {
      if (line.trim() === "") continue;
      lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    return lines;
  }

  /** Whether the server was ever started (its log then cannot be empty). */
  get started(): boolean {
    return this.proc !== undefined;
  }

  /** Secrets this gateway's logs must never hold: the master key, the admin key, every key created. */
  secretsToSweep(): string[] {
    const adminKey = this.env.ADMIN_API_KEY;
    return [this.masterKey, ...(adminKey ? [adminKey] : []), ...this.secrets];
  }

  /** Starts the server and waits for `GET /health` = 200. */
  async start(): Promise<void> {
    if (this.running) throw new Error("gateway already running");
    for (let attempt = 0; ; attempt++) {
      const before = this.out.length + this.err.length;
      try {
        await this.spawnAndWait();
        return;
      } catch (err) {
        const said = (this.out + this.err).slice(before);
        // Another process took the port between picking and binding it: pick again.
        if (attempt < 3 && /EADDRINUSE|address already in use|port .* in use/i.test(said)) {
          this.port = freePort();
          continue;
        }
        throw err;
      }
    }
  }

  private async spawnAndWait(): Promise<void> {
    const proc = Bun.spawn([process.execPath, CLI_ENTRY, "serve"], {
      cwd: this.dir,
      env: { ...this.env, PORT: String(this.port) },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    this.proc = proc;
    live.add(proc);
    void proc.exited.then(() => live.delete(proc));
    this.pumps = [
      pump(proc.stdout, (s) => {
        this.out += s;
      }),
      pump(proc.stderr, (s) => {
        this.err += s;
      }),
    ];
    const deadline = performance.now() + STARTUP_TIMEOUT_MS;
    while (performance.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        await Promise.allSettled(this.pumps);
        throw new Error(
          `gateway exited during start-up (code ${proc.exitCode}, signal ${proc.signalCode})\n` +
            `stdout:\n${this.out}\nstderr:\n${this.err}`,
        );
      }
      try {
        const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(1000) });
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      await Bun.sleep(20);
    }
    proc.kill("SIGKILL");
    await proc.exited;
    throw new Error(`gateway did not answer /health within ${STARTUP_TIMEOUT_MS} ms\n${this.err}`);
  }

  /** SIGTERM, then waits for the process to exit; returns its exit code. */
  async stop(): Promise<number | null> {
    return this.signal("SIGTERM");
  }

  /**
   * SIGTERM twice, `gapMs` apart (an impatient operator; under a second apart
   * the two count as one stop). Returns the exit code.
   */
  async terminateTwice(gapMs = 1200): Promise<number | null> {
    const proc = this.proc;
    if (!proc) throw new Error("gateway not started");
    proc.kill("SIGTERM");
    await Bun.sleep(gapMs);
    return this.signal("SIGTERM");
  }

  /** SIGKILL: no chance to flush anything. Returns the exit code (null: killed). */
  async kill(): Promise<number | null> {
    return this.signal("SIGKILL");
  }

  /** Stops (SIGTERM) if running and starts again on the same data directory and port. */
  async restart(): Promise<void> {
    if (this.running) {
      const code = await this.stop();
      if (code !== 0) throw new Error(`gateway exited with ${code} on SIGTERM`);
    }
    await this.start();
  }

  private async signal(signal: "SIGTERM" | "SIGKILL"): Promise<number | null> {
    const proc = this.proc;
    if (!proc) throw new Error("gateway not started");
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill("SIGKILL"), STOP_TIMEOUT_MS);
    try {
      await proc.exited;
    } finally {
      clearTimeout(timer);
    }
    await Promise.allSettled(this.pumps);
    return proc.exitCode;
  }

  /** Stops the gateway if it runs and removes its data directory. */
  async close(): Promise<void> {
    if (this.running) await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Runs `bun src/cli/main.ts <args>` against the same database (killed after 30 s). */
  cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
    return runCli(args, { cwd: this.dir, env: { ...this.env, ...env } });
  }

  /**
   * `keys create … --json`; the secret is in `key`. Before the first start
   * there is no database yet, so it runs `db migrate` first, as an operator
   * would (only `serve` and `db migrate` create one).
   */
  async createKey(options: CreateKeyOptions): Promise<CreatedKey> {
    if (!this.env.DATABASE_URL && this.env.STORAGE_TYPE !== "file" && !existsSync(this.dbPath)) {
      const created = await this.cli(["db", "migrate"]);
      if (created.code !== 0)
        throw new Error(`db migrate failed (${created.code}): ${created.stderr}`);
    }
    const args = ["keys", "create", "--name", options.name, "--limit", String(options.limit)];
    if (options.model !== undefined) args.push("--model", options.model);
    if (options.expires !== undefined) args.push("--expires", options.expires);
    if (options.concurrency !== undefined) args.push("--concurrency", String(options.concurrency));
    if (options.weeklyLimit !== undefined) args.push("--weekly-limit", String(options.weeklyLimit));
    if (options.models !== undefined) args.push("--models", options.models);
    args.push("--json");
    const r = await this.cli(args);
    if (r.code !== 0) throw new Error(`keys create failed (${r.code}): ${r.stderr}`);
    const created = JSON.parse(r.stdout) as CreatedKey;
    this.secrets.push(created.key);
    return created;
  }

  /** `keys rotate <id> --json`; returns the new secret. */
  async rotateKey(id: string): Promise<string> {
    const r = await this.cli(["keys", "rotate", id, "--json"]);
    if (r.code !== 0) throw new Error(`keys rotate failed (${r.code}): ${r.stderr}`);
    const rotated = JSON.parse(r.stdout) as CreatedKey;
    this.secrets.push(rotated.key);
    return rotated.key;
  }

  /** `GET /stats` with the key; throws unless 200. */
  async stats(key: string): Promise<Stats> {
    const res = await fetch(`${this.url}/stats`, { headers: { authorization: `Bearer ${key}` } });
    if (res.status !== 200) throw new Error(`/stats answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as Stats;
  }

  /** Polls /stats until `total_lifetime_tokens` and `total_requests` reach the given values. */
  async statsWhen(
    key: string,
    expected: { tokens: number; requests?: number },
    timeoutMs = 1000,
  ): Promise<Stats> {
    let last: Stats | undefined;
    try {
      return await waitFor(
        `stats to show ${expected.tokens} tokens`,
        async () => {
          last = await this.stats(key);
          const ok =
            last.total_lifetime_tokens === expected.tokens &&
            (expected.requests === undefined || last.total_requests === expected.requests);
          return ok ? last : undefined;
        },
        timeoutMs,
      );
    } catch (err) {
      // Show what was there instead, so a failure says by how much it is off.
      if (last) {
        throw new Error(
          `${(err as Error).message}; last seen: ${last.total_lifetime_tokens} tokens, ${last.total_requests} requests`,
        );
      }
      throw err;
    }
  }

  fetch(path: string, init?: RequestInit): Promise<Response> {
    return fetch(`${this.url}${path}`, init);
  }

  /**
   * A call to the admin API with `Authorization: Bearer <ADMIN_API_KEY>` (the
   * one this gateway was started with), a JSON body when given; the answer's
   * JSON (null when it has none).
   */
  async admin<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T; headers: Headers; text: string }> {
    const adminKey = this.env.ADMIN_API_KEY;
    if (!adminKey) throw new Error("this gateway was started without ADMIN_API_KEY");
    const res = await this.fetch(path, {
      method,
      headers: {
        authorization: `Bearer ${adminKey}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    // Keys created or rotated through the admin API are secrets too.
    for (const m of text.matchAll(/"key"\s*:\s*"(pk_[^"]+)"/g)) if (m[1]) this.secrets.push(m[1]);
    return {
      status: res.status,
      body: (text ? JSON.parse(text) : null) as T,
      headers: res.headers,
      text,
    };
  }

  openai(apiKey: string, options: Partial<ConstructorParameters<typeof OpenAI>[0]> = {}): OpenAI {
    return new OpenAI({ baseURL: `${this.url}/v1`, apiKey, ...options });
  }

  anthropic(
    apiKey: string,
    options: Partial<ConstructorParameters<typeof Anthropic>[0]> = {},
  ): Anthropic {
    return new Anthropic({ baseURL: this.url, apiKey, ...options });
  }
}

/** A started gateway with a fresh data directory. */
export async function startGateway(options: GatewayOptions = {}): Promise<GatewayProcess> {
  const gw = new GatewayProcess(options);
  try {
    await gw.start();
  } catch (err) {
    await gw.close();
    throw err;
  }
  return gw;
}

/** Request headers that tell the mock upstream how to behave. */
export function mockHeaders(c: {
  status?: number;
  delayMs?: number;
  chunkDelayMs?: number;
  pauseMs?: number;
  promptTokens?: number;
  completionTokens?: number;
  noUsage?: boolean;
  dropAfter?: number;
  /** Not read by the mock: a tag to find this request among the mock's records. */
  tag?: string;
}): Record<string, string> {
  const h: Record<string, string> = {};
  if (c.status !== undefined) h["x-mock-status"] = String(c.status);
  if (c.delayMs !== undefined) h["x-mock-delay-ms"] = String(c.delayMs);
  if (c.chunkDelayMs !== undefined) h["x-mock-chunk-delay-ms"] = String(c.chunkDelayMs);
  if (c.pauseMs !== undefined) h["x-mock-pause-ms"] = String(c.pauseMs);
  if (c.promptTokens !== undefined) h["x-mock-prompt-tokens"] = String(c.promptTokens);
  if (c.completionTokens !== undefined) h["x-mock-completion-tokens"] = String(c.completionTokens);
  if (c.noUsage) h["x-mock-no-usage"] = "1";
  if (c.dropAfter !== undefined) h["x-mock-drop-after"] = String(c.dropAfter);
  if (c.tag !== undefined) h["x-test-tag"] = c.tag;
  return h;
}

/** A fresh tag for `mockHeaders({ tag })`. */
export function newTag(): string {
  return crypto.randomUUID();
}

/**
 * The timeout of every end-to-end test and hook (bun's default is 5 s): a
 * test that spawns a gateway and several CLI processes, on two cores shared
 * with other work, may take many times what it takes on an idle machine.
 * Promises about time are asserted inside the tests, never by this bound.
 * Each e2e suite sets it with `setDefaultTimeout(E2E_TIMEOUT_MS)`; a test
 * that needs longer says so.
 */
export const E2E_TIMEOUT_MS = 60_000;

/** Every gateway made in this test process, for the sweep of their logs. */
const everyGateway = new Set<GatewayProcess>();

/**
 * The secret sweep every end-to-end suite ends with: each gateway made so far
 * that was started has a non-empty log, and no log holds its master key, its
 * admin key or any key created or rotated through it (CLI or admin API).
 * Returns how many gateways were swept.
 */
export function expectNoSecretsInLogs(): number {
  let swept = 0;
  for (const g of everyGateway) {
    if (!g.started) continue;
    const all = g.stdout + g.stderr;
    expect(all.trim().length).toBeGreaterThan(0);
    for (const secret of g.secretsToSweep()) {
      expect(secret.length).toBeGreaterThan(8);
      if (all.includes(secret)) {
        throw new Error(
          `a secret (${secret.slice(0, 6)}…) appears in the log of the gateway in ${g.dir}`,
        );
      }
    }
    swept++;
  }
  expect(swept).toBeGreaterThan(0);
  return swept;
}

/** For beforeAll/afterAll hooks that start or stop gateways. */
export const HOOK_TIMEOUT_MS = E2E_TIMEOUT_MS;
