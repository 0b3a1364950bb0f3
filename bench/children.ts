/**
 * Child processes of the benchmark: every one is tracked so that a normal end,
 * an error or Ctrl-C all leave nothing running. Output is drained continuously
 * (a child blocked on a full pipe would stall the run) and only a bounded tail
 * is kept for error messages.
 */
import type { Subprocess } from "bun";

const TAIL_BYTES = 8192;
const live = new Set<Child>();

export interface Child {
  name: string;
  proc: Subprocess<"ignore", "pipe", "pipe">;
  pid: number;
  /** Resolves with the first stdout line (rejects if the child exits first). */
  firstLine: Promise<string>;
  /** Resolves with stdout (its last `stdoutLimit` bytes) once the child exits. */
  stdout(): Promise<string>;
  /** The last part of stdout so far, for children that run until stopped. */
  stdoutTail(): string;
  stderrTail(): string;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Bytes of stdout kept (the last ones); raise it for output that is parsed whole. */
  stdoutLimit?: number;
}

async function drain(
  stream: ReadableStream<Uint8Array>,
  keep: (text: string) => void,
  onLine?: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  let lineSeen = onLine === undefined;
  for await (const chunk of stream) {
    const text = decoder.decode(chunk, { stream: true });
    keep(text);
    if (!lineSeen && onLine !== undefined) {
      pending += text;
      const nl = pending.indexOf("\n");
      if (nl !== -1) {
        lineSeen = true;
        onLine(pending.slice(0, nl));
      }
    }
  }
}

export function spawnChild(name: string, cmd: string[], options: SpawnOptions = {}): Child {
  const proc = Bun.spawn(cmd, {
    cwd: options.cwd,
    env: options.env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const outLimit = options.stdoutLimit ?? TAIL_BYTES * 8;
  let out = "";
  let errTail = "";
  let resolveLine: (line: string) => void = () => {};
  const firstLine = new Promise<string>((resolve, reject) => {
    resolveLine = resolve;
    proc.exited.then((code) => {
      reject(new Error(`${name} exited with code ${code}: ${errTail.slice(-2000)}`));
    });
  });
  // Don't let an unobserved rejection (child exiting normally) crash the run.
  firstLine.catch(() => {});
  const outDone = drain(
    proc.stdout,
    (text) => {
      out = (out + text).slice(-outLimit);
    },
    (line) => resolveLine(line),
  );
  const errDone = drain(proc.stderr, (text) => {
    errTail = (errTail + text).slice(-TAIL_BYTES);
  });
  const child: Child = {
    name,
    proc,
    pid: proc.pid,
    firstLine,
    async stdout() {
      await Promise.all([proc.exited, outDone, errDone]);
      return out;
    },
    stdoutTail: () => out,
    stderrTail: () => errTail,
  };
  live.add(child);
  proc.exited.then(() => live.delete(child));
  return child;
}

/** Reads the {"url": ...} line the mock and the bare proxy print when they listen. */
export async function childUrl(child: Child, timeoutMs = 15_000): Promise<string> {
  const line = await withTimeout(child.firstLine, timeoutMs, `${child.name} did not start`);
  const parsed = JSON.parse(line) as { url?: unknown };
  if (typeof parsed.url !== "string") throw new Error(`${child.name} printed no url: ${line}`);
  return parsed.url;
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} (after ${ms} ms)`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** SIGTERM, then SIGKILL whatever is still alive after a grace period. */
export async function stopChild(child: Child, graceMs = 3000): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  child.proc.kill("SIGTERM");
  const exited = await Promise.race([
    child.proc.exited.then(() => true),
    Bun.sleep(graceMs).then(() => false),
  ]);
  if (!exited) child.proc.kill("SIGKILL");
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((child) => stopChild(child)));
}

// Asynchronous clean-up (dropping the benchmark's database) that must also run
// on Ctrl-C, after the children that use it are gone.
const shutdownTasks: (() => Promise<void>)[] = [];

export function onShutdown(task: () => Promise<void>): void {
  shutdownTasks.push(task);
}

/** Stops every child, then runs the clean-up tasks once each; never throws. */
export async function shutdown(): Promise<void> {
  await stopAll();
  for (const task of shutdownTasks.splice(0)) {
    await task().catch((error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      process.stderr.write(`bench: clean-up failed: ${message}\n`);
    });
  }
}

/** Last resort when the runner itself is going down: no waiting possible. */
function killAllNow(): void {
  for (const child of live) child.proc.kill("SIGKILL");
}

let hooked = false;
/**
 * Makes Ctrl-C, SIGTERM and a crash of the runner take the children down too.
 * `cleanup` runs synchronously on every exit path (finally blocks do not run
 * when a signal handler calls process.exit).
 */
export function installExitHooks(cleanup: () => void): void {
  if (hooked) return;
  hooked = true;
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping children\n`);
      void shutdown().finally(() => process.exit(130));
    });
  }
  process.on("exit", () => {
    killAllNow();
    cleanup();
  });
}
