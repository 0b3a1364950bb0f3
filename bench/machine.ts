/**
 * Facts about the machine and about our child processes' memory, read from
 * /proc, so every result says where it was measured.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { release } from "node:os";
import { join } from "node:path";
import { freshBuild } from "../src/build/fresh.ts";

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  bun: string;
  node: string;
  autocannon: string;
  /** 1-minute load average when the run started: other work skews every figure. */
  loadAtStart: number;
  /** What Tollgate's launcher runs: its build in dist/, or the sources (docs/operations.md, Memory). */
  tollgateCode: "build" | "sources";
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return fallback;
  }
}

function commandOutput(cmd: string[]): string {
  try {
    const result = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "ignore" });
    return result.stdout.toString().trim();
  } catch {
    return "";
  }
}

export function machineInfo(): MachineInfo {
  const cpuinfo = readOr("/proc/cpuinfo", "");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown";
  const memKiB = Number(/^MemTotal:\s+(\d+)/m.exec(readOr("/proc/meminfo", ""))?.[1] ?? 0);
  const autocannonPkg = readOr(
    join(import.meta.dir, "..", "node_modules", "autocannon", "package.json"),
    "{}",
  );
  return {
    // nproc honours CPU affinity, which is what the processes can actually use.
    cpus: Number(commandOutput(["nproc"])) || navigator.hardwareConcurrency,
    cpuModel: model,
    memoryGiB: Math.round((memKiB / 1024 / 1024) * 10) / 10,
    kernel: release(),
    bun: Bun.version,
    node: commandOutput(["node", "--version"]).replace(/^v/, ""),
    autocannon: (JSON.parse(autocannonPkg) as { version?: string }).version ?? "unknown",
    loadAtStart: loadAverage(),
    tollgateCode: freshBuild(join(import.meta.dir, "..")) ? "build" : "sources",
  };
}

/** The 1-minute load average: other work on the machine skews every figure. */
export function loadAverage(): number {
  return Number(readOr("/proc/loadavg", "0").split(" ")[0]);
}

export interface ProcMemory {
  pid: number;
  exe: string;
  /** Peak resident set (VmHWM), bytes. */
  peakRssBytes: number;
  /** Current resident set (VmRSS), bytes. */
  rssBytes: number;
}

function statusKiB(status: string, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  return Number(match?.[1] ?? 0) * 1024;
}

export function procMemory(pid: number): ProcMemory | undefined {
  const status = readOr(`/proc/${pid}/status`, "");
  if (status === "") return undefined;
  let exe = "";
  try {
    exe = readlinkSync(`/proc/${pid}/exe`);
  } catch {
    exe = "unknown";
  }
  return {
    pid,
    exe,
    peakRssBytes: statusKiB(status, "VmHWM"),
    rssBytes: statusKiB(status, "VmRSS"),
  };
}

/** All descendants of pid, so a server that forks workers is measured whole. */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const current = queue.shift() as number;
    // Each thread lists the children it started, so read every thread's list.
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${current}/task`);
    } catch {
      tasks = [];
    }
    const children = tasks
      .flatMap((tid) => readOr(`/proc/${current}/task/${tid}/children`, "").split(/\s+/))
      .filter((s) => s !== "")
      .map(Number);
    out.push(...children);
    queue.push(...children);
  }
  return out;
}

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  clockTicks ??= Number(commandOutput(["getconf", "CLK_TCK"])) || 100;
  return clockTicks;
}

/**
 * CPU time (user + system) used so far by pid and its descendants, in ms. Unlike
 * req/s, CPU per request barely moves when other work shares the machine.
 */
export function cpuTimeMs(pid: number): number {
  let ticks = 0;
  for (const p of [pid, ...descendants(pid)]) {
    const stat = readOr(`/proc/${p}/stat`, "");
    // The command name may hold spaces; the fields we want follow its closing paren.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks += Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
  }
  return (ticks / ticksPerSecond()) * 1000;
}

/** Memory of pid and its descendants (a server that forks is measured whole). */
export function memoryOf(pid: number): ProcMemory[] {
  return [pid, ...descendants(pid)].map(procMemory).filter((m): m is ProcMemory => m !== undefined);
}
