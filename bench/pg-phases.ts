/**
 * The PostgreSQL part of a run: Tollgate on a fresh PostgreSQL database, first
 * one instance, then two sharing it, each with one hot key and with many keys.
 * Same mock upstream, same request (non-streamed OpenAI chat), same load
 * generator and the same number of connections as the SQLite phase it is
 * compared with. Two instances get half the connections each, from two load
 * generators running at the same time; their 2xx rates are summed.
 */
import { join } from "node:path";
import { runAutocannon, runSpreadLoad, type ThroughputResult } from "./autocannon.ts";
import { onShutdown, stopChild } from "./children.ts";
import { gatewayEnv, gatewayWarnings, type Instance, serveGateway } from "./gateway.ts";
import { type BenchKey, createKey, createKeys, listTotals, migrate } from "./keys.ts";
import { cpuTimeMs, loadAverage, memoryOf } from "./machine.ts";
import { resetMock } from "./mock-client.ts";
import { type BenchDatabase, createBenchDatabase, PgUnreachableError } from "./pg-admin.ts";
import { checkPhaseTokens } from "./pg-tokens.ts";
import type { BenchConfig, PgConfig } from "./report.ts";
import type { PgPhase, PgResult } from "./report-pg.ts";
import { headersFor, pathFor, SCENARIOS, type Scenario } from "./scenarios.ts";

const OPENAI: Scenario = (() => {
  const scenario = SCENARIOS.find((s) => s.id === "openai");
  if (scenario === undefined) throw new Error("scenarios.ts lost its openai scenario");
  return scenario;
})();
// An instance flushes its last usage on SIGTERM; give it time to do so cleanly.
const STOP_GRACE_MS = 10_000;
const WARNING_LINES = 5;

interface PhasePlan {
  id: string;
  instances: 1 | 2;
  manyKeys: boolean;
}

const PLAN: PhasePlan[] = [
  { id: "1-hot", instances: 1, manyKeys: false },
  { id: "1-many", instances: 1, manyKeys: true },
  { id: "2-hot", instances: 2, manyKeys: false },
  { id: "2-many", instances: 2, manyKeys: true },
];

export interface PgOptions {
  config: BenchConfig;
  /** The run's temporary directory: each instance gets a folder (and journal) in it. */
  dir: string;
  /** The mock to use, started only when the PostgreSQL part actually runs. */
  upstream: () => Promise<string>;
  baseline: PgResult["baseline"];
  log: (message: string) => void;
}

interface PgContext extends Omit<PgOptions, "upstream"> {
  upstream: string;
}

interface Setup {
  ctx: PgContext;
  cli: { env: Record<string, string>; dir: string };
  hot: BenchKey;
  many: BenchKey[];
  instances: Instance[];
}

function label(plan: PhasePlan, keys: number): string {
  const who = plan.instances === 1 ? "1 instance" : `${plan.instances} instances`;
  return `${who}, ${plan.manyKeys ? `${keys} keys` : "hot key"}`;
}

/** Connections split as evenly as whole numbers allow. */
function split(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) =>
    Math.max(1, Math.floor(total / parts) + (i < total % parts ? 1 : 0)),
  );
}

function load(
  s: Setup,
  plan: PhasePlan,
  instance: Instance,
  slot: number,
  connections: number,
  durationSec: number,
): Promise<ThroughputResult> {
  const spec = {
    url: `${instance.url}${pathFor("tollgate", "openai")}`,
    headers: headersFor(OPENAI, s.hot.key),
    body: OPENAI.body,
    connections,
    durationSec,
  };
  if (!plan.manyKeys) return runAutocannon(spec);
  return runSpreadLoad({
    ...spec,
    keys: s.many.map((k) => k.key),
    slot,
    slots: plan.instances,
  });
}

async function runPhase(s: Setup, plan: PhasePlan, warnings: string[]): Promise<PgPhase> {
  const { config, log, upstream } = s.ctx;
  const name = label(plan, s.many.length);
  const instances = s.instances.slice(0, plan.instances);
  const connections = split(config.connections, plan.instances);
  const readTotals = () => listTotals(s.cli.env, s.cli.dir);
  const before = await readTotals();
  await resetMock(upstream);
  const all = (sec: number) =>
    Promise.all(instances.map((inst, i) => load(s, plan, inst, i, connections[i] ?? 1, sec)));
  let clientOk = 0;
  if (config.warmupSec > 0) {
    log(`warm-up PostgreSQL ${name}`);
    for (const r of await all(config.warmupSec)) clientOk += r.ok;
  }
  log(`throughput PostgreSQL ${name} (${config.durationSec} s)`);
  const cpuBefore = instances.map((inst) => cpuTimeMs(inst.child.pid));
  const measured = await all(config.durationSec);
  const perInstance = measured.map((result, i) => {
    const pid = instances[i]?.child.pid ?? 0;
    const answered = Math.max(1, result.ok + result.non2xx);
    const cpuUs = Math.round(((cpuTimeMs(pid) - (cpuBefore[i] ?? 0)) * 1000) / answered);
    return { result, cpuUs };
  });
  for (const r of measured) clientOk += r.ok;
  const keyIds = plan.manyKeys ? s.many.map((k) => k.id) : [s.hot.id];
  const tokens = await checkPhaseTokens(
    { label: name, upstream, keyIds, before, readTotals, clientOk },
    warnings,
  );
  return {
    id: plan.id,
    label: name,
    instances: plan.instances,
    keys: keyIds.length,
    rps: measured.reduce((sum, r) => sum + r.rps, 0),
    perInstance,
    tokens,
  };
}

async function startInstance(s: Setup, database: string): Promise<void> {
  const n = s.instances.length + 1;
  const dir = join(s.ctx.dir, `pg-instance-${n}`);
  s.ctx.log(`starting Tollgate instance ${n} on PostgreSQL`);
  const env = gatewayEnv(dir, s.ctx.upstream, database);
  s.instances.push(await serveGateway(`tollgate serve (PostgreSQL ${n})`, env, dir));
}

/** SIGTERM each instance; anything it logged, or an unclean exit, becomes a warning. */
async function stopInstances(instances: Instance[], warnings: string[]): Promise<void> {
  await Promise.all(instances.map((inst) => stopChild(inst.child, STOP_GRACE_MS)));
  for (const [i, inst] of instances.entries()) {
    await inst.child.stdout().catch(() => "");
    const { exitCode, signalCode } = inst.child.proc;
    if (exitCode !== 0) {
      warnings.push(
        `instance ${i + 1} did not exit cleanly on SIGTERM (exit ${exitCode}, signal ${signalCode}): ${inst.child.stderrTail().slice(-500)}`,
      );
    }
    const lines = gatewayWarnings(inst.child);
    if (lines.length > 0) {
      warnings.push(`instance ${i + 1} logged ${lines.length} line(s) at warn or above:`);
      warnings.push(...lines.slice(0, WARNING_LINES).map((l) => `  ${l.slice(0, 400)}`));
    }
  }
}

/** Keys, instances and the four phases; `instances` collects what was started, for stopping. */
async function measure(
  ctx: PgContext,
  database: string,
  result: PgResult,
  instances: Instance[],
): Promise<void> {
  const cliDir = join(ctx.dir, "pg-cli");
  const s: Setup = {
    ctx,
    cli: { env: gatewayEnv(cliDir, ctx.upstream, database), dir: cliDir },
    hot: { id: "", key: "" },
    many: [],
    instances,
  };
  try {
    const keys = ctx.config.pg.keys;
    const started = Date.now();
    // The schema first; the key commands then run side by side.
    await migrate(s.cli.env, s.cli.dir);
    s.hot = await createKey(s.cli.env, s.cli.dir, "bench-hot");
    ctx.log(`creating ${keys} keys through the CLI`);
    const parallel = Math.min(8, Math.max(2, 2 * navigator.hardwareConcurrency));
    s.many = await createKeys(s.cli.env, s.cli.dir, keys, parallel, "bench-many");
    result.keyCreationSec = (Date.now() - started) / 1000;
    ctx.log(`${keys + 1} keys created in ${result.keyCreationSec.toFixed(1)} s`);
    for (const plan of PLAN) {
      while (s.instances.length < plan.instances) await startInstance(s, database);
      result.phases.push(await runPhase(s, plan, result.warnings));
    }
  } finally {
    result.memory = s.instances.map((inst) => memoryOf(inst.child.pid));
  }
}

/** The database for the PostgreSQL part, or why there is none. */
export type PgTarget = { db: BenchDatabase } | { skipped: string };

/**
 * Decided before any phase runs, so a run that requires PostgreSQL
 * (BENCH_PG=1) fails at once, and a skip is announced at the start.
 */
export async function preparePostgres(pg: PgConfig): Promise<PgTarget> {
  if (pg.mode === "off") return { skipped: "BENCH_PG=0" };
  try {
    const db = await createBenchDatabase(pg.adminUrl ?? "");
    onShutdown(db.drop);
    return { db };
  } catch (error) {
    if (!(error instanceof PgUnreachableError)) throw error;
    const why = `no PostgreSQL server answered at ${pg.server} (${error.message})`;
    if (pg.mode === "on") throw new Error(`BENCH_PG=1 but ${why}`);
    return { skipped: `${why}; set BENCH_PG_URL, or BENCH_PG=0 to skip without trying` };
  }
}

export async function runPostgres(target: PgTarget, options: PgOptions): Promise<PgResult> {
  const result: PgResult = {
    status: "skipped",
    server: options.config.pg.server,
    baseline: options.baseline,
    phases: [],
    memory: [],
    warnings: [],
  };
  if ("skipped" in target) {
    result.reason = target.skipped;
    return result;
  }
  const { db } = target;
  result.database = db.name;
  result.loadAtStart = loadAverage();
  const instances: Instance[] = [];
  try {
    const ctx: PgContext = { ...options, upstream: await options.upstream() };
    await measure(ctx, db.url, result, instances);
    result.status = "ran";
  } catch (error) {
    // The SQLite figures of the run still stand: report what was measured.
    result.status = "failed";
    result.reason = error instanceof Error ? error.message : String(error);
  } finally {
    await stopInstances(instances, result.warnings);
    await db.drop().catch((error: unknown) => {
      result.warnings.push(`could not drop ${db.name}: ${String(error)}`);
    });
  }
  return result;
}
