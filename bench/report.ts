/**
 * Turns one run into what people read: a console table, a JSON file for tools
 * and a markdown snippet for the README, plus pass/fail against the budget.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ThroughputResult } from "./autocannon.ts";
import type { ProbeResult } from "./latency-probe.ts";
import type { MachineInfo, ProcMemory } from "./machine.ts";
import { type PgResult, pgConsole, pgMarkdown, pgVerdicts } from "./report-pg.ts";
import { AGENT_SCENARIOS, SCENARIOS, type ScenarioId, type TargetId } from "./scenarios.ts";
import { mdTable, textTable } from "./tables.ts";

export interface PgConfig {
  /** auto: run when the server answers, say so when it does not; on: it must answer. */
  mode: "auto" | "on" | "off";
  /** Admin connection; never written to the results (it may hold a password). */
  adminUrl?: string;
  /** host:port/database of adminUrl, for the report. */
  server: string;
  /** Keys of the many-keys phases. */
  keys: number;
}

export interface BenchConfig {
  targets: TargetId[];
  scenarios: ScenarioId[];
  durationSec: number;
  connections: number;
  warmupSec: number;
  latencyRate: number;
  latencyDurationSec: number;
  /** The agent-body scenarios' own load (scenarios.ts), or null when they are not run. */
  agent: { connections: number; latencyRate: number } | null;
  pg: PgConfig;
}

export interface TokenCheck {
  upstreamTokens: number;
  upstreamRequests: number;
  chargedTokens: number;
  chargedRequests: number;
  /** 2xx answers Tollgate's clients saw; requests cut at a phase's end are not in it. */
  clientOk: number;
  lostTokens: number;
  doubledTokens: number;
  settleMs: number;
}

export interface ThroughputRow {
  scenario: ScenarioId;
  target: TargetId;
  result: ThroughputResult;
  /** CPU time per answered request, microseconds: the proxy (none when direct) and the mock. */
  cpuUs: { proxy?: number; upstream: number };
}

export interface BenchResult {
  date: string;
  machine: MachineInfo;
  config: BenchConfig;
  throughput: ThroughputRow[];
  latency: { scenario: ScenarioId; target: TargetId; result: ProbeResult }[];
  memory: {
    tollgate?: ProcMemory[];
    tollgateIdle?: ProcMemory[];
    bare?: ProcMemory[];
    /** The peaks after the agent scenarios' phases too (their large bodies raise them). */
    tollgateAgent?: ProcMemory[];
    bareAgent?: ProcMemory[];
    /** Tollgate's VmHWM (MiB) after each of its phases, in order: which phase set the peak. */
    tollgateByPhase?: Array<{ phase: string; peakMiB: number }>;
  };
  tokens?: TokenCheck;
  pg?: PgResult;
  notes: string[];
}

export interface Verdict {
  name: string;
  goal: string;
  measured: string;
  pass: boolean;
}

const MiB = 1024 * 1024;

function label(id: ScenarioId): string {
  return [...SCENARIOS, ...AGENT_SCENARIOS].find((s) => s.id === id)?.label ?? id;
}

/** The scenarios measured in this run: the four, then the agents' when they ran. */
function measured(result: BenchResult): ScenarioId[] {
  return result.config.agent
    ? [...result.config.scenarios, ...AGENT_SCENARIOS.map((s) => s.id)]
    : result.config.scenarios;
}

function rps(result: BenchResult, scenario: ScenarioId, target: TargetId): number | undefined {
  return result.throughput.find((t) => t.scenario === scenario && t.target === target)?.result.rps;
}

function probe(result: BenchResult, scenario: ScenarioId, target: TargetId) {
  return result.latency.find((t) => t.scenario === scenario && t.target === target)?.result;
}

function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || b === 0 ? "-" : (a / b).toFixed(2);
}

function ms(n: number | undefined): string {
  return n === undefined || Number.isNaN(n) ? "-" : n.toFixed(3);
}

function signedMs(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined) return "-";
  const d = a - b;
  return `${d >= 0 ? "+" : ""}${d.toFixed(3)}`;
}

function peakMiB(processes: ProcMemory[] | undefined): number | undefined {
  if (processes === undefined || processes.length === 0) return undefined;
  return processes.reduce((sum, p) => sum + p.peakRssBytes, 0) / MiB;
}

/** CPU per request of the gateway, at most this many times the bare proxy's. */
const CPU_GOAL = 1.4;

export function verdicts(result: BenchResult): Verdict[] {
  const out: Verdict[] = [];
  for (const scenario of measured(result)) {
    const stream = [...SCENARIOS, ...AGENT_SCENARIOS].find((s) => s.id === scenario)?.stream;
    const goal = stream ? 0.9 : 0.8;
    const t = rps(result, scenario, "tollgate");
    const b = rps(result, scenario, "bare");
    if (t === undefined || b === undefined || b === 0) continue;
    out.push({
      name: `throughput ${label(scenario)}`,
      goal: `>= ${goal.toFixed(1)}x bare`,
      measured: `${(t / b).toFixed(2)}x`,
      pass: t / b >= goal,
    });
  }
  for (const scenario of measured(result)) {
    // The steadiest figure on a shared machine: CPU time per answered request.
    const t = cpu(result, scenario, "tollgate")?.proxy;
    const b = cpu(result, scenario, "bare")?.proxy;
    if (t === undefined || b === undefined || b === 0) continue;
    out.push({
      name: `CPU per request ${label(scenario)}`,
      goal: `<= ${CPU_GOAL.toFixed(1)}x bare`,
      measured: `${(t / b).toFixed(2)}x`,
      pass: t / b <= CPU_GOAL,
    });
  }
  for (const scenario of measured(result)) {
    const t = probe(result, scenario, "tollgate");
    const b = probe(result, scenario, "bare");
    if (t === undefined || b === undefined) continue;
    const added = t.p50Ms - b.p50Ms;
    out.push({
      name: `added p50 ${label(scenario)}`,
      goal: "<= 0.5 ms over bare",
      measured: `${added.toFixed(3)} ms`,
      pass: added <= 0.5,
    });
  }
  const peak = peakMiB(result.memory.tollgate);
  if (peak !== undefined) {
    out.push({
      name: "gateway peak RSS (the four scenarios)",
      goal: "<= 100 MiB",
      measured: `${peak.toFixed(1)} MiB`,
      pass: peak <= 100,
    });
  }
  if (result.tokens !== undefined) {
    const { lostTokens, doubledTokens } = result.tokens;
    out.push({
      name: "tokens lost / doubled",
      goal: "0 / 0",
      measured: `${lostTokens} / ${doubledTokens}`,
      pass: lostTokens === 0 && doubledTokens === 0,
    });
  }
  return [...out, ...pgVerdicts(result.pg)];
}

function throughputRows(result: BenchResult, scenarios: ScenarioId[]): string[][] {
  return scenarios.map((scenario) => {
    const d = rps(result, scenario, "direct");
    const b = rps(result, scenario, "bare");
    const t = rps(result, scenario, "tollgate");
    const failures = result.throughput
      .filter((row) => row.scenario === scenario)
      .map(
        (row) => `${row.target[0]}:${row.result.non2xx + row.result.errors + row.result.timeouts}`,
      )
      .join(" ");
    const fmt = (n: number | undefined) => (n === undefined ? "-" : Math.round(n).toString());
    return [
      label(scenario),
      fmt(d),
      fmt(b),
      fmt(t),
      ratio(b, d),
      ratio(t, b),
      ratio(t, d),
      failures,
    ];
  });
}

const THROUGHPUT_HEAD = [
  "scenario",
  "direct",
  "bare",
  "tollgate",
  "bare/direct",
  "tollgate/bare",
  "tollgate/direct",
  "failed",
];

function cpu(result: BenchResult, scenario: ScenarioId, target: TargetId) {
  return result.throughput.find((t) => t.scenario === scenario && t.target === target)?.cpuUs;
}

function cpuRows(result: BenchResult, scenarios: ScenarioId[]): string[][] {
  return scenarios.map((scenario) => {
    const b = cpu(result, scenario, "bare")?.proxy;
    const t = cpu(result, scenario, "tollgate")?.proxy;
    const m = cpu(result, scenario, "direct")?.upstream;
    const fmt = (n: number | undefined) => (n === undefined ? "-" : String(n));
    return [label(scenario), fmt(m), fmt(b), fmt(t), ratio(t, b)];
  });
}

const CPU_HEAD = ["scenario", "mock (direct)", "bare proxy", "tollgate", "tollgate/bare"];

function latencyRows(result: BenchResult, scenarios: ScenarioId[]): string[][] {
  return scenarios.map((scenario) => {
    const d = probe(result, scenario, "direct");
    const b = probe(result, scenario, "bare");
    const t = probe(result, scenario, "tollgate");
    const pair = (p: ProbeResult | undefined) =>
      p === undefined ? "-" : `${ms(p.p50Ms)} / ${ms(p.p99Ms)}`;
    return [
      label(scenario),
      pair(d),
      pair(b),
      pair(t),
      `${signedMs(t?.p50Ms, b?.p50Ms)} / ${signedMs(t?.p99Ms, b?.p99Ms)}`,
      `${signedMs(t?.p50Ms, d?.p50Ms)} / ${signedMs(t?.p99Ms, d?.p99Ms)}`,
    ];
  });
}

const LATENCY_HEAD = [
  "scenario",
  "direct p50 / p99",
  "bare p50 / p99",
  "tollgate p50 / p99",
  "tollgate - bare",
  "tollgate - direct",
];

function machineLine(result: BenchResult): string {
  const m = result.machine;
  return `${m.cpus} CPU (${m.cpuModel}), ${m.memoryGiB} GiB RAM, Linux ${m.kernel}, bun ${m.bun}, node ${m.node}, autocannon ${m.autocannon}, load ${m.loadAtStart} at start, Tollgate from its ${m.tollgateCode === "build" ? "build (dist/)" : "sources"}`;
}

function tokenLine(tokens: TokenCheck | undefined): string {
  if (tokens === undefined) return "Tokens: not checked (Tollgate not run).";
  return (
    `Tokens: upstream reported ${tokens.upstreamTokens} in ${tokens.upstreamRequests} responses; ` +
    `Tollgate charged ${tokens.chargedTokens} over ${tokens.chargedRequests} requests ` +
    `(clients saw ${tokens.clientOk} OK); lost ${tokens.lostTokens}, doubled ${tokens.doubledTokens} ` +
    `(settled after ${tokens.settleMs} ms).`
  );
}

function memoryLine(result: BenchResult): string {
  const describe = (name: string, processes: ProcMemory[] | undefined) => {
    const peak = peakMiB(processes);
    if (peak === undefined || processes === undefined) return `${name}: -`;
    const pids = processes.map((p) => `${p.pid} ${p.exe.split("/").pop()}`).join(", ");
    return `${name} ${peak.toFixed(1)} MiB (pid ${pids})`;
  };
  const idle = result.memory.tollgateIdle;
  const idleText =
    idle === undefined
      ? ""
      : ` (${(idle.reduce((sum, p) => sum + p.rssBytes, 0) / MiB).toFixed(1)} MiB idle after start)`;
  const phases = result.memory.tollgateByPhase ?? [];
  const byPhase =
    phases.length === 0
      ? ""
      : ` Tollgate's peak after each phase (MiB): ${phases.map((p) => `${p.phase} ${p.peakMiB.toFixed(0)}`).join(", ")}.`;
  return `Peak RSS (VmHWM) over the four scenarios: ${describe("Tollgate", result.memory.tollgate)}${idleText}; ${describe("bare proxy", result.memory.bare)}.${byPhase}`;
}

/** The agent scenarios' own section: their load, three tables, the peaks they raised. */
function agentSection(
  result: BenchResult,
  table: (head: string[], rows: string[][]) => string,
): string[] {
  const agent = result.config.agent;
  if (agent === null) return [];
  const ids = AGENT_SCENARIOS.map((s) => s.id);
  const kb = Math.round((AGENT_SCENARIOS[0]?.body.length ?? 0) / 1000);
  const peak = (m: ProcMemory[] | undefined) => {
    const p = peakMiB(m);
    return p === undefined ? "-" : `${p.toFixed(1)} MiB`;
  };
  return [
    `Agent body (${kb} KB of JSON, a coding agent's conversation: bench/agent-body.ts): ${agent.connections} connections, ${result.config.durationSec} s per phase; latency at a fixed ${agent.latencyRate} req/s, ms`,
    "",
    table(THROUGHPUT_HEAD, throughputRows(result, ids)),
    "",
    table(CPU_HEAD, cpuRows(result, ids)),
    "",
    table(LATENCY_HEAD, latencyRows(result, ids)),
    "",
    `Peak RSS after the agent phases: Tollgate ${peak(result.memory.tollgateAgent)}; bare proxy ${peak(result.memory.bareAgent)}.`,
    "",
  ];
}

function verdictRows(list: Verdict[]): string[][] {
  return list.map((v) => [v.name, v.goal, v.measured, v.pass ? "PASS" : "FAIL"]);
}

export function consoleReport(result: BenchResult): string {
  const c = result.config;
  return [
    "",
    `Tollgate benchmark, ${result.date}`,
    machineLine(result),
    "",
    `Throughput: 2xx responses per second, ${c.connections} connections, ${c.durationSec} s per phase`,
    textTable(THROUGHPUT_HEAD, throughputRows(result, c.scenarios)),
    "",
    "CPU per request during the throughput phases, microseconds (user + system)",
    textTable(CPU_HEAD, cpuRows(result, c.scenarios)),
    "",
    `Latency: full response at a fixed ${c.latencyRate} req/s for ${c.latencyDurationSec} s, ms`,
    textTable(LATENCY_HEAD, latencyRows(result, c.scenarios)),
    "",
    memoryLine(result),
    "",
    ...agentSection(result, textTable),
    tokenLine(result.tokens),
    "",
    ...pgConsole(result.pg, c.connections, c.durationSec),
    "Targets",
    textTable(["check", "goal", "measured", ""], verdictRows(verdicts(result))),
    ...result.notes.map((n) => `note: ${n}`),
    "",
  ].join("\n");
}

export function markdownReport(result: BenchResult): string {
  const c = result.config;
  return [
    `### Benchmark, ${result.date.slice(0, 10)}`,
    "",
    `Machine: ${machineLine(result)}. Loopback, mock upstream; load generator, mock and proxy share the CPU.`,
    "",
    `Throughput (2xx req/s, ${c.connections} connections, ${c.durationSec} s per phase):`,
    "",
    mdTable(THROUGHPUT_HEAD, throughputRows(result, c.scenarios)),
    "",
    "CPU per request (µs, user + system, during the throughput phases):",
    "",
    mdTable(CPU_HEAD, cpuRows(result, c.scenarios)),
    "",
    `Latency at a fixed ${c.latencyRate} req/s (ms, p50 / p99, full response):`,
    "",
    mdTable(LATENCY_HEAD, latencyRows(result, c.scenarios)),
    "",
    memoryLine(result),
    "",
    ...agentSection(result, (head, rows) => mdTable(head, rows)),
    tokenLine(result.tokens),
    "",
    ...pgMarkdown(result.pg, c.connections, c.durationSec),
    mdTable(["check", "goal", "measured", "result"], verdictRows(verdicts(result)), false),
    "",
    ...result.notes.map((n) => `Note: ${n}.\n`),
  ].join("\n");
}

/** Writes <stamp>.json and <stamp>.md under bench/results and returns their paths. */
export function writeResults(result: BenchResult): { json: string; markdown: string } {
  const dir = join(import.meta.dir, "results");
  mkdirSync(dir, { recursive: true });
  const stamp = result.date.replace(/[:.]/g, "-");
  const json = join(dir, `${stamp}.json`);
  const markdown = join(dir, `${stamp}.md`);
  writeFileSync(json, `${JSON.stringify({ ...result, verdicts: verdicts(result) }, null, 2)}\n`);
  writeFileSync(markdown, markdownReport(result));
  return { json, markdown };
}
