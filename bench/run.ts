/**
 * One run of the benchmark: starts the mock upstream, the bare proxy and Tollgate
 * as their own processes, loads each with the same requests, checks that every
 * token the upstream reported was charged exactly once, then does the same for
 * Tollgate on PostgreSQL (one and two instances, see pg-phases.ts) and writes
 * the results.
 *
 *   bun bench/run.ts            (settings: see bench/README.md)
 *
 * Tollgate talks to a mock of its own, so that mock's token count belongs to
 * Tollgate's phases alone, whatever the direct and bare phases did.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runAutocannon } from "./autocannon.ts";
import {
  type Child,
  childUrl,
  installExitHooks,
  shutdown,
  spawnChild,
  stopChild,
} from "./children.ts";
import { expectedSeconds, readConfig } from "./config.ts";
import {
  type Gateway,
  gatewayAvailable,
  gatewayWarnings,
  keyStats,
  startGateway,
} from "./gateway.ts";
import { runLatencyProbe } from "./latency-probe.ts";
import { cpuTimeMs, machineInfo, memoryOf, type ProcMemory, procMemory } from "./machine.ts";
import { mockStats, resetMock } from "./mock-client.ts";
import { preparePostgres, runPostgres } from "./pg-phases.ts";
import {
  type BenchConfig,
  type BenchResult,
  consoleReport,
  type TokenCheck,
  verdicts,
  writeResults,
} from "./report.ts";
import {
  AGENT_SCENARIOS,
  headersFor,
  pathFor,
  SCENARIOS,
  type Scenario,
  type TargetId,
} from "./scenarios.ts";

const HERE = import.meta.dir;
// The gateway batches usage writes; give it this long before the first comparison.
const FLUSH_WAIT_MS = 1500;
const SETTLE_LIMIT_MS = 5000;
// A probe this late (p99) sent its requests in visible bursts rather than evenly.
const LATE_NOTE_MS = 5;
const PROBE_WARMUP_SEC = 0.5;
// Stands in for a key on direct and bare runs so every target gets the same bytes.
const PLACEHOLDER_KEY = `pk_${"0".repeat(43)}`;

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

/** One thing to load: where it listens, which process proxies, which mock answers. */
interface Target {
  id: TargetId;
  base: string;
  key: string;
  proxyPid?: number;
  upstreamPid: number;
}

interface Setup {
  targets: Target[];
  gateway?: Gateway;
  gatewayUpstream?: string;
  /** Tollgate's memory once it answered /health, before any load. */
  gatewayIdle?: ProcMemory[];
  barePid: number;
}

function startMock(name: string): Child {
  return spawnChild(name, [process.execPath, join(HERE, "mock-server.ts")], {
    env: { PATH: process.env.PATH ?? "" },
  });
}

async function setUp(config: BenchConfig, dir: string, notes: string[]): Promise<Setup> {
  const mock = startMock("mock");
  const mockUrl = await childUrl(mock);
  const bare = spawnChild("bare proxy", [process.execPath, join(HERE, "bare-proxy.ts")], {
    env: { PATH: process.env.PATH ?? "", BARE_TARGET: mockUrl },
  });
  const bareUrl = await childUrl(bare);
  const all: Target[] = [
    { id: "direct", base: mockUrl, key: PLACEHOLDER_KEY, upstreamPid: mock.pid },
    {
      id: "bare",
      base: bareUrl,
      key: PLACEHOLDER_KEY,
      proxyPid: bare.pid,
      upstreamPid: mock.pid,
    },
  ];
  const setup: Setup = { targets: [], barePid: bare.pid };
  if (config.targets.includes("tollgate")) {
    if (gatewayAvailable()) {
      const upstream = startMock("mock (Tollgate upstream)");
      setup.gatewayUpstream = await childUrl(upstream);
      log("starting Tollgate");
      setup.gateway = await startGateway(dir, setup.gatewayUpstream);
      // Whatever start-up did upstream is not part of the comparison.
      await resetMock(setup.gatewayUpstream);
      setup.gatewayIdle = memoryOf(setup.gateway.child.pid);
      all.push({
        id: "tollgate",
        base: setup.gateway.url,
        key: setup.gateway.key,
        proxyPid: setup.gateway.child.pid,
        upstreamPid: upstream.pid,
      });
    } else {
      notes.push("src/cli/main.ts not found: Tollgate was not run");
    }
  }
  setup.targets = all.filter((t) => config.targets.includes(t.id));
  return setup;
}

function urlFor(target: Target, scenario: Scenario): string {
  return `${target.base}${pathFor(target.id, scenario.dialect)}`;
}

/** Tollgate's peak so far, after one of its phases: the step where it grows is the phase to look at. */
function notePeak(target: Target, phase: string, result: BenchResult): void {
  if (target.id !== "tollgate" || target.proxyPid === undefined) return;
  const peak = procMemory(target.proxyPid)?.peakRssBytes;
  if (peak === undefined) return;
  result.memory.tollgateByPhase ??= [];
  result.memory.tollgateByPhase.push({ phase, peakMiB: peak / (1024 * 1024) });
}

/** How a phase loads its target when not as the config says: the agent scenario's own load. */
interface PhaseLoad {
  connections?: number;
  rate?: number;
  bodyFile?: string;
}

async function throughputPhase(
  config: BenchConfig,
  scenario: Scenario,
  target: Target,
  result: BenchResult,
  load: PhaseLoad = {},
): Promise<number> {
  const spec = {
    url: urlFor(target, scenario),
    headers: headersFor(scenario, target.key),
    body: scenario.body,
    bodyFile: load.bodyFile,
    connections: load.connections ?? config.connections,
  };
  let ok = 0;
  if (config.warmupSec > 0) {
    log(`warm-up ${target.id} ${scenario.id}`);
    ok += (await runAutocannon({ ...spec, durationSec: config.warmupSec })).ok;
  }
  log(`throughput ${target.id} ${scenario.id} (${config.durationSec} s)`);
  const proxyBefore = target.proxyPid === undefined ? 0 : cpuTimeMs(target.proxyPid);
  const upstreamBefore = cpuTimeMs(target.upstreamPid);
  const measured = await runAutocannon({ ...spec, durationSec: config.durationSec });
  const answered = Math.max(1, measured.ok + measured.non2xx);
  const perRequest = (before: number, pid: number) =>
    Math.round(((cpuTimeMs(pid) - before) * 1000) / answered);
  notePeak(target, `${scenario.id} throughput`, result);
  result.throughput.push({
    scenario: scenario.id,
    target: target.id,
    result: measured,
    cpuUs: {
      proxy: target.proxyPid === undefined ? undefined : perRequest(proxyBefore, target.proxyPid),
      upstream: perRequest(upstreamBefore, target.upstreamPid),
    },
  });
  return ok + measured.ok;
}

async function latencyPhase(
  config: BenchConfig,
  scenario: Scenario,
  target: Target,
  result: BenchResult,
  load: PhaseLoad = {},
): Promise<number> {
  const rate = load.rate ?? config.latencyRate;
  log(`latency ${target.id} ${scenario.id} at ${rate} req/s`);
  const probed = await runLatencyProbe({
    url: urlFor(target, scenario),
    headers: headersFor(scenario, target.key),
    body: load.bodyFile ? "" : scenario.body,
    bodyFile: load.bodyFile,
    rate,
    durationSec: config.latencyDurationSec,
    warmupSec: PROBE_WARMUP_SEC,
  });
  notePeak(target, `${scenario.id} latency`, result);
  result.latency.push({ scenario: scenario.id, target: target.id, result: probed });
  if (probed.lateP99Ms > LATE_NOTE_MS) {
    result.notes.push(
      `latency probe ran late on ${target.id} ${scenario.id} (p99 ${probed.lateP99Ms} ms)`,
    );
  }
  return probed.ok + probed.warmupOk;
}

/** Waits for the gateway's batched usage to land, then compares it with the mock. */
async function checkTokens(
  gateway: Gateway,
  upstream: string,
  clientOk: number,
): Promise<TokenCheck> {
  const started = Date.now();
  await Bun.sleep(FLUSH_WAIT_MS);
  for (;;) {
    const [up, charged] = await Promise.all([mockStats(upstream), keyStats(gateway)]);
    const settled =
      up.tokensReported === charged.totalLifetimeTokens && up.requests === charged.totalRequests;
    if (settled || Date.now() - started > FLUSH_WAIT_MS + SETTLE_LIMIT_MS) {
      return {
        upstreamTokens: up.tokensReported,
        upstreamRequests: up.requests,
        chargedTokens: charged.totalLifetimeTokens,
        chargedRequests: charged.totalRequests,
        clientOk,
        lostTokens: Math.max(0, up.tokensReported - charged.totalLifetimeTokens),
        doubledTokens: Math.max(0, charged.totalLifetimeTokens - up.tokensReported),
        settleMs: Date.now() - started,
      };
    }
    await Bun.sleep(250);
  }
}

async function bench(config: BenchConfig, dir: string): Promise<BenchResult> {
  const notes: string[] = [];
  // Read before our own processes start, so the load is other people's work.
  const machine = machineInfo();
  if (machine.loadAtStart > machine.cpus / 2) {
    notes.push(
      `the machine was busy before the run (load ${machine.loadAtStart} on ${machine.cpus} CPUs): ` +
        "req/s, ratios and latencies are unreliable; CPU per request is the steadiest figure",
    );
  }
  const pgTarget = await preparePostgres(config.pg);
  if ("db" in pgTarget) {
    log(`PostgreSQL: database ${pgTarget.db.name} on ${config.pg.server.replace(/\/[^/]*$/, "")}`);
  } else {
    log(`PostgreSQL part skipped: ${pgTarget.skipped}`);
  }
  const setup = await setUp(config, dir, notes);
  const scenarios = SCENARIOS.filter((s) => config.scenarios.includes(s.id));
  const result: BenchResult = {
    date: new Date().toISOString(),
    machine,
    // The admin URL may carry a password: the results keep only host, port and database.
    config: {
      ...config,
      targets: setup.targets.map((t) => t.id),
      pg: { ...config.pg, adminUrl: undefined },
    },
    throughput: [],
    latency: [],
    memory: { tollgateIdle: setup.gatewayIdle },
    notes,
  };
  // Targets of one scenario run back to back, so background drift hits them alike.
  let tollgateOk = 0;
  for (const scenario of scenarios) {
    for (const target of setup.targets) {
      const ok = await throughputPhase(config, scenario, target, result);
      if (target.id === "tollgate") tollgateOk += ok;
    }
  }
  for (const scenario of scenarios) {
    for (const target of setup.targets) {
      const ok = await latencyPhase(config, scenario, target, result);
      if (target.id === "tollgate") tollgateOk += ok;
    }
  }
  // The four scenarios' peaks, before the agents' large bodies raise them.
  if (setup.gateway) result.memory.tollgate = memoryOf(setup.gateway.child.pid);
  result.memory.bare = memoryOf(setup.barePid);
  if (config.agent) {
    tollgateOk += await agentPhases(config, config.agent, setup, dir, result);
  }
  if (setup.gateway && setup.gatewayUpstream) {
    log("waiting for Tollgate's usage flush");
    result.tokens = await checkTokens(setup.gateway, setup.gatewayUpstream, tollgateOk);
    // Done with it: an idle gateway's timers should not run beside the PostgreSQL phases.
    const child = setup.gateway.child;
    await stopChild(child);
    await child.stdout();
    if (child.proc.exitCode !== 0) {
      notes.push(
        `Tollgate did not exit cleanly on SIGTERM (exit ${child.proc.exitCode}, signal ${child.proc.signalCode})`,
      );
    }
    const lines = gatewayWarnings(child);
    if (lines.length > 0) {
      notes.push(`Tollgate logged ${lines.length} line(s) at warn or above, first: ${lines[0]}`);
    }
  }
  result.pg = await runPostgres(pgTarget, {
    config,
    dir,
    // The same mock as Tollgate's SQLite phases when there was one (it is reset per phase).
    upstream: async () =>
      setup.gatewayUpstream ?? (await childUrl(startMock("mock (PostgreSQL upstream)"))),
    baseline: baselineOf(result),
    log,
  });
  return result;
}

/**
 * The agent scenarios on every target: throughput and latency with their own
 * load, then the peaks they raised. A body goes through a file: it is too
 * long for a command line.
 */
async function agentPhases(
  config: BenchConfig,
  agent: NonNullable<BenchConfig["agent"]>,
  setup: Setup,
  dir: string,
  result: BenchResult,
): Promise<number> {
  let tollgateOk = 0;
  for (const scenario of AGENT_SCENARIOS) {
    const bodyFile = join(dir, `${scenario.id}.json`);
    writeFileSync(bodyFile, scenario.body);
    const load = { connections: agent.connections, rate: agent.latencyRate, bodyFile };
    for (const target of setup.targets) {
      const ok = await throughputPhase(config, scenario, target, result, load);
      if (target.id === "tollgate") tollgateOk += ok;
    }
    for (const target of setup.targets) {
      const ok = await latencyPhase(config, scenario, target, result, load);
      if (target.id === "tollgate") tollgateOk += ok;
    }
  }
  if (setup.gateway) result.memory.tollgateAgent = memoryOf(setup.gateway.child.pid);
  result.memory.bareAgent = memoryOf(setup.barePid);
  return tollgateOk;
}

/** The figure the PostgreSQL phases are compared with: Tollgate, OpenAI chat, this run. */
function baselineOf(result: BenchResult): NonNullable<BenchResult["pg"]>["baseline"] {
  const row = result.throughput.find((t) => t.scenario === "openai" && t.target === "tollgate");
  if (row === undefined) return undefined;
  const storage = process.env.BENCH_DATABASE_URL ? "BENCH_DATABASE_URL" : "SQLite";
  return {
    rps: row.result.rps,
    cpuUs: row.cpuUs.proxy,
    latencyP50Ms: row.result.latencyP50Ms,
    latencyP99Ms: row.result.latencyP99Ms,
    storage,
  };
}

async function main(): Promise<number> {
  const config = readConfig();
  const dir = mkdtempSync(join(tmpdir(), "tollgate-bench-"));
  installExitHooks(() => rmSync(dir, { recursive: true, force: true }));
  const budgetMs = (expectedSeconds(config) * 1.5 + 60) * 1000;
  const watchdog = setTimeout(() => {
    log(`overall time limit (${Math.round(budgetMs / 1000)} s) reached, stopping`);
    void shutdown().finally(() => process.exit(1));
  }, budgetMs);
  try {
    const result = await bench(config, dir);
    process.stdout.write(consoleReport(result));
    const files = writeResults(result);
    process.stdout.write(`results: ${files.json}\nmarkdown: ${files.markdown}\n`);
    // Lost or doubled tokens are a correctness failure; speed targets only inform.
    const tokens = verdicts(result).filter((v) => v.name.startsWith("tokens lost"));
    if (tokens.some((v) => !v.pass)) return 2;
    return result.pg?.status === "failed" ? 1 : 0;
  } finally {
    clearTimeout(watchdog);
    await shutdown();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    log(`failed: ${error instanceof Error ? error.message : String(error)}`);
    void shutdown().finally(() => process.exit(1));
  },
);
