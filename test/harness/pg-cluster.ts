/**
 * A private PostgreSQL server for fault-injection tests: a cluster made with
 * `initdb` in a temporary folder, run with `pg_ctl`, listening on 127.0.0.1
 * with trust auth. Tests stop it (as an operator or a crash would) and start
 * it again on the same port and data, so a gateway pointed at it sees a real
 * outage and a real recovery.
 *
 *   const pg = await startCluster();      // database "tollgate" created
 *   await pg.stop({ mode: "fast" });      // or "immediate" (a crash)
 *   await pg.start();
 *   await pg.destroy();                   // always, in a finally/afterAll
 *
 * PostgreSQL refuses to run as root: when the tests run as root (CI, this
 * machine) the binaries run as the `postgres` OS user through `runuser` (or
 * `su`), in a folder owned by that user.
 */

import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";

const OS_USER = "postgres";
/** Bounds on each step, so a wedged server fails the test instead of hanging it. */
const INITDB_TIMEOUT_MS = 60_000;
const CTL_TIMEOUT_S = 30;
const READY_TIMEOUT_MS = 30_000;

export type StopMode = "fast" | "immediate";

export interface PgCluster {
  /** `postgres://postgres@127.0.0.1:<port>/tollgate` */
  readonly url: string;
  readonly port: number;
  /** The temporary folder (data directory and server log inside). */
  readonly dir: string;
  readonly running: boolean;
  /** `pg_ctl stop -m <mode>`: fast disconnects clients cleanly, immediate is a crash. */
  stop(options?: { mode?: StopMode }): Promise<void>;
  /** Starts the server again on the same port and data; resolves once it answers queries. */
  start(): Promise<void>;
  /**
   * Freezes the server and all its processes (SIGSTOP): connections stay
   * open but nothing answers, as with a hung host or a network partition.
   */
  pause(): void;
  /** Lets a paused server go on (SIGCONT). */
  resume(): void;
  /** A new empty database on this server; returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** URL of another database on this server. */
  urlOf(database: string): string;
  /** The server's own log (useful when a test fails). */
  serverLog(): string;
  /** Stops the server (immediately) if it runs and removes the folder. Safe to call twice. */
  destroy(): Promise<void>;
}

export interface PgBinaries {
  bin: string;
  version: string;
}

/**
 * Where initdb and pg_ctl are: `$PG_BIN_DIR` when set, otherwise the newest
 * `/usr/lib/postgresql/<version>/bin` that has them. Undefined when absent.
 */
export function findPgBinaries(): PgBinaries | undefined {
  const has = (bin: string) =>
    ["initdb", "pg_ctl", "postgres"].every((b) => existsSync(join(bin, b)));
  const forced = process.env.PG_BIN_DIR;
  if (forced) return has(forced) ? { bin: forced, version: "PG_BIN_DIR" } : undefined;
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => /^\d+(\.\d+)?$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const bin = join(root, version, "bin");
    if (has(bin)) return { bin, version };
  }
  return undefined;
}

/**
 * Why clusters cannot be made here, or undefined when they can. Tests print
 * this loudly and skip; they must never pass without having run.
 */
export function clusterUnavailableReason(): string | undefined {
  const found = findPgBinaries();
  if (!found) {
    return "no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/<version>/bin or $PG_BIN_DIR; install the postgresql package";
  }
  if (isRoot()) {
    if (osUserIds() === undefined) {
      return `running as root, and there is no '${OS_USER}' OS user to run PostgreSQL as`;
    }
    if (!existsSync("/usr/sbin/runuser") && !existsSync("/sbin/runuser") && !which("su")) {
      return "running as root, and neither runuser nor su is available to drop privileges";
    }
  }
  return undefined;
}

function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

function which(cmd: string): boolean {
  return Bun.which(cmd) !== null;
}

let ids: { uid: number; gid: number } | null | undefined;
function osUserIds(): { uid: number; gid: number } | undefined {
  if (ids === undefined) {
    const uid = Bun.spawnSync(["id", "-u", OS_USER], { stdout: "pipe", stderr: "ignore" });
    const gid = Bun.spawnSync(["id", "-g", OS_USER], { stdout: "pipe", stderr: "ignore" });
    ids =
      uid.exitCode === 0 && gid.exitCode === 0
        ? { uid: Number(uid.stdout.toString().trim()), gid: Number(gid.stdout.toString().trim()) }
        : null;
  }
  return ids ?? undefined;
}

/** The command line that runs `argv` as the right OS user. */
function asServerUser(argv: string[]): string[] {
  if (!isRoot()) return argv;
  const runuser = ["/usr/sbin/runuser", "/sbin/runuser"].find((p) => existsSync(p));
  if (runuser) return [runuser, "-u", OS_USER, "--", ...argv];
  const quoted = argv.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
  return ["su", OS_USER, "-s", "/bin/sh", "-c", quoted];
}

interface RunResult {
  code: number | null;
  output: string;
}

/** Runs one PostgreSQL program to completion, killed after `timeoutMs`. */
async function run(argv: string[], cwd: string, timeoutMs: number): Promise<RunResult> {
  const proc = Bun.spawn(asServerUser(argv), {
    cwd,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LC_ALL: "C", LANG: "C", TZ: "UTC" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    timeout: timeoutMs,
    killSignal: "SIGKILL",
  });
  // pg_ctl sends the server's output to the log file (-l), so these pipes
  // close when pg_ctl exits; the race is only a guard.
  const text = Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  const code = await proc.exited;
  const out = await Promise.race([text, Bun.sleep(2000).then(() => ["", "(output not closed)"])]);
  return { code, output: out.join("").trim() };
}

/**
 * A free port below the kernel's ephemeral range: while the server is stopped
 * its port must not be taken by some client's outgoing connection.
 */
async function pickPort(): Promise<number> {
  let low = 32768;
  try {
    const range = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/);
    low = Number(range[0]) || low;
  } catch {
    // not Linux: the default will do
  }
  const floor = Math.min(15_000, low - 2000);
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = floor + Math.floor(Math.random() * (low - floor - 1));
    if (await portFree(port)) return port;
  }
  throw new Error("could not find a free port for PostgreSQL");
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** Processes whose parent is `parent` (Linux /proc). */
function childrenOf(parent: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // pid (comm) state ppid …; comm may hold spaces and parentheses.
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === parent) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

function signal(pid: number, sig: "SIGSTOP" | "SIGCONT"): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/**
 * A small shell process that outlives this one: when the test process is
 * gone (finished without destroy(), timed out, killed), it stops the server
 * and removes the folder. `process.on("exit")` is no help here: `bun test`
 * does not emit it.
 */
function watchdog(bin: string, dir: string): number | undefined {
  const data = join(dir, "data");
  const q = (a: string) => `'${a.replaceAll("'", `'\\''`)}'`;
  const stop = asServerUser([
    join(bin, "pg_ctl"),
    "-D",
    data,
    "-m",
    "immediate",
    "-w",
    "-t",
    "20",
    "stop",
  ])
    .map(q)
    .join(" ");
  const script = [
    `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done`,
    `if [ -f ${q(join(data, "postmaster.pid"))} ]; then`,
    // A paused server must go on before it can be stopped.
    `  pm=$(head -n 1 ${q(join(data, "postmaster.pid"))})`,
    `  kill -CONT "$pm" $(ps -o pid= --ppid "$pm" 2>/dev/null) 2>/dev/null`,
    `  ${stop} >/dev/null 2>&1`,
    "fi",
    `rm -rf ${q(dir)}`,
  ].join("\n");
  // Started in the background of a shell that exits at once, so it is not
  // a child of this process (Bun ends its children when it exits).
  const spawned = Bun.spawnSync(["sh", "-c", `(${script}) >/dev/null 2>&1 </dev/null &\necho $!`], {
    stdout: "pipe",
    stderr: "ignore",
  });
  const pid = Number(spawned.stdout.toString().trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

class Cluster implements PgCluster {
  private isRunning = false;
  private destroyed = false;
  private paused: number[] = [];
  private readonly data: string;
  private readonly logFile: string;
  /** The watchdog process, ended by destroy(). */
  private readonly guard: number | undefined;

  constructor(
    private readonly bin: string,
    readonly dir: string,
    private currentPort: number,
  ) {
    this.data = join(dir, "data");
    this.logFile = join(dir, "server.log");
    this.guard = watchdog(bin, dir);
  }

  get port(): number {
    return this.currentPort;
  }

  get url(): string {
    return this.urlOf("tollgate");
  }

  get running(): boolean {
    return this.isRunning;
  }

  /** Moves a stopped cluster to another port (the first one was taken). */
  async movePort(port: number): Promise<void> {
    this.currentPort = port;
    await this.writeSettings();
  }

  urlOf(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  serverLog(): string {
    try {
      return readFileSync(this.logFile, "utf8");
    } catch {
      return "";
    }
  }

  async init(): Promise<void> {
    const r = await run(
      [
        join(this.bin, "initdb"),
        "-D",
        this.data,
        "-U",
        "postgres",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--no-locale",
        "--no-sync",
        "--no-instructions",
      ],
      this.dir,
      INITDB_TIMEOUT_MS,
    );
    if (r.code !== 0) throw new Error(`initdb failed (exit ${r.code}):\n${r.output}`);
    await this.writeSettings();
  }

  private async writeSettings(): Promise<void> {
    // Small and fast: nothing here needs to survive a power cut, only a crash
    // of the server process (the OS page cache survives that). Not
    // synchronous_commit = off: an immediate stop would then lose commits the
    // client was told had succeeded, which is a data loss the gateway could
    // not be blamed for.
    const settings = [
      "listen_addresses = '127.0.0.1'",
      `port = ${this.currentPort}`,
      "unix_socket_directories = ''",
      "fsync = off",
      "full_page_writes = off",
      "max_connections = 40",
      "shared_buffers = 16MB",
      "max_wal_size = 64MB",
      "min_wal_size = 32MB",
      "checkpoint_timeout = 30min",
      "autovacuum = off",
      "log_min_messages = warning",
      "log_connections = off",
      "log_disconnections = off",
    ];
    await Bun.write(join(this.data, "postgresql.auto.conf"), `${settings.join("\n")}\n`);
    if (isRoot()) {
      const id = osUserIds();
      if (id) chownSync(join(this.data, "postgresql.auto.conf"), id.uid, id.gid);
    }
  }

  async start(): Promise<void> {
    if (this.destroyed) throw new Error("cluster destroyed");
    if (this.isRunning) return;
    const r = await run(
      [
        join(this.bin, "pg_ctl"),
        "-D",
        this.data,
        "-l",
        this.logFile,
        "-w",
        "-t",
        String(CTL_TIMEOUT_S),
        "start",
      ],
      this.dir,
      (CTL_TIMEOUT_S + 5) * 1000,
    );
    if (r.code !== 0) {
      // It may have come up half way: make sure nothing is left running.
      this.killNow();
      throw new Error(
        `pg_ctl start failed (exit ${r.code}): ${r.output}\nserver log:\n${this.serverLog()}`,
      );
    }
    this.isRunning = true;
    await this.waitReady();
  }

  pause(): void {
    const postmaster = this.postmasterPid();
    if (postmaster === undefined) throw new Error("no server process to pause");
    // The postmaster first, so it forks no new backend meanwhile; then every child.
    signal(postmaster, "SIGSTOP");
    this.paused = [postmaster, ...childrenOf(postmaster)];
    for (const pid of this.paused) signal(pid, "SIGSTOP");
  }

  resume(): void {
    for (const pid of this.paused) signal(pid, "SIGCONT");
    this.paused = [];
  }

  private postmasterPid(): number | undefined {
    try {
      const pid = Number(readFileSync(join(this.data, "postmaster.pid"), "utf8").split("\n")[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  async stop(options: { mode?: StopMode } = {}): Promise<void> {
    if (!this.isRunning) return;
    this.resume();
    const mode = options.mode ?? "fast";
    const r = await run(
      [
        join(this.bin, "pg_ctl"),
        "-D",
        this.data,
        "-m",
        mode,
        "-w",
        "-t",
        String(CTL_TIMEOUT_S),
        "stop",
      ],
      this.dir,
      (CTL_TIMEOUT_S + 5) * 1000,
    );
    if (r.code !== 0 && existsSync(join(this.data, "postmaster.pid"))) {
      throw new Error(`pg_ctl stop -m ${mode} failed (exit ${r.code}): ${r.output}`);
    }
    this.isRunning = false;
  }

  async createDatabase(name: string): Promise<string> {
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain database name: ${name}`);
    const admin = postgres(this.urlOf("postgres"), {
      max: 1,
      onnotice: () => {},
      connect_timeout: 5,
    });
    try {
      await admin.unsafe(`create database ${name}`);
    } finally {
      await admin.end({ timeout: 5 });
    }
    return this.urlOf(name);
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    try {
      if (this.isRunning || existsSync(join(this.data, "postmaster.pid"))) {
        this.isRunning = true;
        await this.stop({ mode: "immediate" }).catch(() => this.killNow());
      }
    } finally {
      this.destroyed = true;
      if (this.guard !== undefined) {
        try {
          process.kill(this.guard, "SIGTERM");
        } catch {
          // already gone
        }
      }
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  /** Synchronous last resort (failed start): stop at once, wait a little. */
  private killNow(): void {
    this.resume();
    if (!existsSync(join(this.data, "postmaster.pid"))) return;
    Bun.spawnSync(
      asServerUser([
        join(this.bin, "pg_ctl"),
        "-D",
        this.data,
        "-m",
        "immediate",
        "-w",
        "-t",
        "10",
        "stop",
      ]),
      { cwd: this.dir, stdin: "ignore", stdout: "ignore", stderr: "ignore", timeout: 15_000 },
    );
    this.isRunning = false;
  }

  /** pg_ctl -w already waited; a query proves it from the client's side. */
  private async waitReady(): Promise<void> {
    const deadline = performance.now() + READY_TIMEOUT_MS;
    let last: unknown;
    while (performance.now() < deadline) {
      const sql = postgres(this.urlOf("postgres"), {
        max: 1,
        onnotice: () => {},
        connect_timeout: 2,
      });
      try {
        await sql`select 1`;
        return;
      } catch (err) {
        last = err;
      } finally {
        await sql.end({ timeout: 1 }).catch(() => {});
      }
      await Bun.sleep(50);
    }
    throw new Error(
      `PostgreSQL on port ${this.port} did not answer within ${READY_TIMEOUT_MS} ms: ${String(last)}`,
    );
  }
}

/**
 * A new cluster in a temporary folder, started, with an empty database
 * `tollgate`. Throws (after cleaning up) when it cannot be made; call
 * `clusterUnavailableReason()` first to skip where it never can.
 */
export async function startCluster(): Promise<PgCluster> {
  const reason = clusterUnavailableReason();
  if (reason) throw new Error(`cannot start a PostgreSQL cluster: ${reason}`);
  const found = findPgBinaries() as PgBinaries;
  const dir = mkdtempSync(join(tmpdir(), "tollgate-pg-"));
  let cluster: Cluster | undefined;
  try {
    if (isRoot()) {
      const id = osUserIds() as { uid: number; gid: number };
      chownSync(dir, id.uid, id.gid);
      const access = await run(["test", "-w", dir], dir, 10_000);
      if (access.code !== 0) {
        throw new Error(
          `the '${OS_USER}' OS user cannot reach ${dir}: set TMPDIR to a folder every user can traverse (e.g. /tmp)`,
        );
      }
    }
    cluster = new Cluster(found.bin, dir, await pickPort());
    await cluster.init();
    for (let attempt = 0; ; attempt++) {
      try {
        if (attempt > 0) await cluster.movePort(await pickPort());
        await cluster.start();
        break;
      } catch (err) {
        // The port was taken between picking and binding: try another one.
        if (attempt < 3 && /could not bind|address already in use/i.test(cluster.serverLog())) {
          continue;
        }
        throw err;
      }
    }
    await cluster.createDatabase("tollgate");
    return cluster;
  } catch (err) {
    if (cluster) await cluster.destroy().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
