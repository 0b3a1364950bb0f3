/**
 * The PostgreSQL part of the report: one and two instances on one database,
 * one hot key and many keys, next to the SQLite figure of the same run.
 */
import type { ThroughputResult } from "./autocannon.ts";
import type { ProcMemory } from "./machine.ts";
import type { TokenCheck, Verdict } from "./report.ts";
import { mdTable, textTable } from "./tables.ts";

/** Same bar as Tollgate against the bare proxy: PostgreSQL may cost at most a fifth. */
export const PG_RATIO_GOAL = 0.8;

export interface PgTokenCheck extends TokenCheck {
  /** Keys the phase sent requests with. */
  keysUsed: number;
  /** Keys whose lifetime totals grew during the phase (all of them, when load really spread). */
  keysCharged: number;
  /** Fewest and most requests charged to one key in the phase. */
  requestsPerKey: { min: number; max: number };
}

export interface PgInstanceRow {
  result: ThroughputResult;
  /** CPU time of this gateway process per request it answered, microseconds. */
  cpuUs: number;
}

export interface PgPhase {
  id: string;
  label: string;
  instances: number;
  keys: number;
  /** 2xx per second, summed over the instances. */
  rps: number;
  perInstance: PgInstanceRow[];
  tokens: PgTokenCheck;
}

export interface PgResult {
  status: "ran" | "skipped" | "failed";
  /** Why it was skipped or failed. */
  reason?: string;
  /** host:port/database of the admin URL (no credentials). */
  server: string;
  /** 1-minute load average when this part started (minutes after the run's start). */
  loadAtStart?: number;
  /** Wall time to create the keys through the CLI, one process per key. */
  keyCreationSec?: number;
  /** The database the run created (and dropped). */
  database?: string;
  /** Tollgate's OpenAI chat figures from the main phases of this run. */
  baseline?: {
    rps: number;
    cpuUs: number | undefined;
    latencyP50Ms: number;
    latencyP99Ms: number;
    storage: "SQLite" | "BENCH_DATABASE_URL";
  };
  phases: PgPhase[];
  /** Peak RSS of each instance after the last phase. */
  memory: ProcMemory[][];
  /** Lines the instances logged at warn or above, and unclean exits. */
  warnings: string[];
}

const MiB = 1024 * 1024;

function ratio(pg: PgPhase, result: PgResult): number | undefined {
  const base = result.baseline?.rps;
  return base === undefined || base === 0 ? undefined : pg.rps / base;
}

/** Everything that was not a 2xx answer, with the 5xx share spelled out: those are Tollgate's. */
function failures(row: PgInstanceRow): string {
  const r = row.result;
  const all = r.non2xx + r.errors + r.timeouts;
  return r.http5xx > 0 ? `${all} (5xx: ${r.http5xx})` : String(all);
}

function baselineName(result: PgResult): string {
  return result.baseline?.storage === "BENCH_DATABASE_URL" ? "baseline" : "SQLite";
}

export function pgVerdicts(result: PgResult | undefined): Verdict[] {
  if (result === undefined) return [];
  return result.phases.flatMap((phase) => {
    const r = ratio(phase, result);
    const { lostTokens, doubledTokens } = phase.tokens;
    const out: Verdict[] = [];
    if (r !== undefined) {
      out.push({
        name: `PostgreSQL ${phase.label}`,
        goal: `>= ${PG_RATIO_GOAL.toFixed(1)}x ${baselineName(result)}`,
        measured: `${r.toFixed(2)}x`,
        pass: r >= PG_RATIO_GOAL,
      });
    }
    out.push({
      name: `tokens lost / doubled, PostgreSQL ${phase.label}`,
      goal: "0 / 0",
      measured: `${lostTokens} / ${doubledTokens}`,
      pass: lostTokens === 0 && doubledTokens === 0,
    });
    return out;
  });
}

function throughputHead(result: PgResult): string[] {
  const base = baselineName(result);
  return [
    "phase",
    "req/s",
    "per instance",
    `x ${base}`,
    "CPU µs/req per instance",
    "p50 / p99 ms under load",
    "failed",
  ];
}

function throughputRows(result: PgResult): string[][] {
  const base = result.baseline;
  const rows = result.phases.map((p) => {
    const r = ratio(p, result);
    const each = (f: (row: PgInstanceRow) => string) => p.perInstance.map(f).join(" + ");
    return [
      p.label,
      String(Math.round(p.rps)),
      p.instances > 1 ? each((row) => String(Math.round(row.result.rps))) : "",
      r === undefined ? "-" : r.toFixed(2),
      p.perInstance.map((row) => String(row.cpuUs)).join(" / "),
      p.perInstance
        .map((row) => `${row.result.latencyP50Ms} / ${row.result.latencyP99Ms}`)
        .join(", "),
      each(failures),
    ];
  });
  if (base === undefined) return rows;
  const first = [
    `${baselineName(result)}, 1 instance, hot key`,
    String(Math.round(base.rps)),
    "",
    "1.00",
    base.cpuUs === undefined ? "-" : String(base.cpuUs),
    `${base.latencyP50Ms} / ${base.latencyP99Ms}`,
    "",
  ];
  return [first, ...rows];
}

const TOKEN_HEAD = [
  "phase",
  "upstream tokens",
  "charged tokens",
  "upstream / charged requests",
  "lost",
  "doubled",
  "keys charged",
  "requests per key",
  "settled",
];

function tokenRows(result: PgResult): string[][] {
  return result.phases.map((p) => {
    const t = p.tokens;
    const perKey =
      t.requestsPerKey.min === t.requestsPerKey.max
        ? String(t.requestsPerKey.min)
        : `${t.requestsPerKey.min}-${t.requestsPerKey.max}`;
    return [
      p.label,
      String(t.upstreamTokens),
      String(t.chargedTokens),
      `${t.upstreamRequests} / ${t.chargedRequests}`,
      String(t.lostTokens),
      String(t.doubledTokens),
      `${t.keysCharged} of ${t.keysUsed}`,
      perKey,
      `${t.settleMs} ms`,
    ];
  });
}

function heading(result: PgResult, connections: number, durationSec: number): string {
  return (
    `PostgreSQL: OpenAI chat, ${connections} connections in all (split between instances), ` +
    `${durationSec} s per phase, fresh database on ${result.server.replace(/\/[^/]*$/, "")}, ` +
    `load ${result.loadAtStart ?? "-"} as this part began (the run's own phases count in it)`
  );
}

function memoryLine(result: PgResult): string {
  const peaks = result.memory.map((processes, i) => {
    const peak = processes.reduce((sum, p) => sum + p.peakRssBytes, 0) / MiB;
    return `instance ${i + 1} ${peak.toFixed(1)} MiB`;
  });
  const keys =
    result.keyCreationSec === undefined
      ? ""
      : ` Keys created through the CLI in ${result.keyCreationSec.toFixed(1)} s.`;
  return peaks.length === 0
    ? keys.trim()
    : `Peak RSS (VmHWM) on PostgreSQL: ${peaks.join(", ")}.${keys}`;
}

function skippedLine(result: PgResult): string {
  return `PostgreSQL: ${result.status} (${result.reason ?? "no reason given"}).`;
}

export function pgConsole(
  result: PgResult | undefined,
  connections: number,
  durationSec: number,
): string[] {
  if (result === undefined) return [];
  if (result.phases.length === 0) return [skippedLine(result), ""];
  return [
    heading(result, connections, durationSec),
    textTable(throughputHead(result), throughputRows(result)),
    "",
    "Tokens per PostgreSQL phase: upstream's count against the database's lifetime totals",
    textTable(TOKEN_HEAD, tokenRows(result)),
    memoryLine(result),
    ...(result.status === "failed" ? [skippedLine(result)] : []),
    ...result.warnings.map((w) => `gateway: ${w}`),
    "",
  ];
}

export function pgMarkdown(
  result: PgResult | undefined,
  connections: number,
  durationSec: number,
): string[] {
  if (result === undefined) return [];
  if (result.phases.length === 0) return [skippedLine(result), ""];
  return [
    "#### PostgreSQL",
    "",
    `${heading(result, connections, durationSec)}; req/s is 2xx per second, summed over instances:`,
    "",
    mdTable(throughputHead(result), throughputRows(result)),
    "",
    "Tokens per PostgreSQL phase (upstream's count against the database's lifetime totals):",
    "",
    mdTable(TOKEN_HEAD, tokenRows(result)),
    "",
    memoryLine(result),
    "",
    ...(result.status === "failed" ? [skippedLine(result), ""] : []),
  ];
}
