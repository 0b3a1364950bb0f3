/**
 * One stop, however it is signalled. Ctrl-C, `systemctl stop` and `timeout`
 * signal the whole process group, and `npm start` or `npx tollgate` pass the
 * signal on to the server once more: the server must take that as one stop,
 * let the streams in flight finish, charge them, and exit 0.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import {
  cliOutput,
  E2E_TIMEOUT_MS,
  freePort,
  HOOK_TIMEOUT_MS,
  mockHeaders,
  operatorEnv,
  REPO_ROOT,
  waitFor,
} from "../harness/gateway.ts";
import {
  MOCK_CONTROL_HEADERS,
  type MockUpstream,
  startMockUpstream,
} from "../harness/mock-upstream.ts";
import { type TestDatabase, testPostgres } from "../harness/postgres.ts";

// Explicit, for two busy cores: the runner's 5 s default measures the machine.
setDefaultTimeout(E2E_TIMEOUT_MS);

const STREAMS = 3;
const CHUNKS = 20;
const PROMPT = 11;

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream();
}, HOOK_TIMEOUT_MS);
afterAll(async () => {
  await mock?.stop();
}, HOOK_TIMEOUT_MS);

interface Launched {
  child: ChildProcess;
  url: string;
  env: Record<string, string>;
  output: () => string;
  exited: Promise<number | null>;
}

/** Starts the gateway the way an operator does, as the leader of its own process group. */
async function launch(command: string[], dir: string, extra: Record<string, string>) {
  const port = freePort();
  const env: Record<string, string> = {
    ...operatorEnv(mock, port, dir),
    EXTRA_REQUEST_HEADERS: MOCK_CONTROL_HEADERS,
    ...extra,
  };
  const [file, ...args] = command as [string, ...string[]];
  const child = spawn(file, args, { cwd: REPO_ROOT, env, detached: true, stdio: "pipe" });
  let out = "";
  child.stdout?.on("data", (b: Buffer) => {
    out += b.toString();
  });
  child.stderr?.on("data", (b: Buffer) => {
    out += b.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    `the gateway to answer /health\n${out}`,
    async () => ((await fetch(`${url}/health`)).status === 200 ? true : undefined),
    20_000,
    50,
  );
  return { child, url, env, output: () => out, exited } satisfies Launched;
}

/** A stream of CHUNKS content chunks, 100 ms apart; resolves with the chunks the client got. */
async function stream(url: string, key: string): Promise<number> {
  const client = new OpenAI({ apiKey: key, baseURL: `${url}/v1`, maxRetries: 0 });
  const s = await client.chat.completions.create(
    { model: "glm-4.7", messages: [{ role: "user", content: "hi" }], stream: true },
    {
      headers: mockHeaders({ chunkDelayMs: 100, promptTokens: PROMPT, completionTokens: CHUNKS }),
    },
  );
  let chunks = 0;
  for await (const part of s) if (part.choices[0]?.delta?.content) chunks++;
  return chunks;
}

const launchers: Array<[string, string[]]> = [
  ["npm start", ["npm", "start"]],
  // The package's `bin`, as `npx tollgate` and an installed `tollgate` run it.
  ["bin/tollgate.js serve", ["node", "bin/tollgate.js", "serve"]],
];
const signals = ["SIGTERM", "SIGINT"] as const;

async function stopWhileStreaming(
  command: string[],
  signal: (typeof signals)[number],
  database: Record<string, string>,
) {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-signals-"));
  let gw: Launched | undefined;
  try {
    gw = await launch(command, dir, database);
    const created = JSON.parse(
      await cliOutput(gw.env, ["keys", "create", "--name", "streams", "--limit", "1M", "--json"]),
    ) as { id: string; key: string };
    const streams = Array.from({ length: STREAMS }, () => stream(gw?.url ?? "", created.key));
    // Every stream under way before the stop.
    await waitFor("the streams to start", () => (mock.requestCount >= STREAMS ? true : undefined));
    await Bun.sleep(300);
    const pid = gw.child.pid;
    if (pid === undefined) throw new Error("no pid");
    process.kill(-pid, signal);
    expect(await Promise.all(streams)).toEqual(Array(STREAMS).fill(CHUNKS));
    expect(await gw.exited).toBe(0);
    // The database itself holds every charge once the process is gone.
    const shown = JSON.parse(await cliOutput(gw.env, ["keys", "show", created.id, "--json"])) as {
      total_lifetime_tokens: number;
      total_requests: number;
    };
    expect(shown.total_requests).toBe(STREAMS);
    expect(shown.total_lifetime_tokens).toBe(STREAMS * (PROMPT + CHUNKS));
    expect(gw.output()).not.toContain("exiting");
  } finally {
    const pid = gw?.child.pid;
    if (pid !== undefined && gw?.child.exitCode === null && gw.child.signalCode === null) {
      process.kill(-pid, "SIGKILL");
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("a stop signalled to the whole process group (SQLite)", () => {
  for (const [name, command] of launchers) {
    for (const signal of signals) {
      test(`${name}, ${signal}: every stream completes and is charged, exit 0`, async () => {
        mock.reset();
        await stopWhileStreaming(command, signal, {});
      }, 60_000);
    }
  }
});

const pg = await testPostgres();
describe.skipIf(!pg.shared)("a stop signalled to the whole process group (PostgreSQL)", () => {
  for (const [name, command] of launchers) {
    for (const signal of signals) {
      test(`${name}, ${signal}: every stream completes and is charged, exit 0`, async () => {
        mock.reset();
        let db: TestDatabase | undefined;
        try {
          db = await pg.create();
          await stopWhileStreaming(command, signal, { DATABASE_URL: db.url });
        } finally {
          await db?.drop();
        }
      }, 60_000);
    }
  }
});
