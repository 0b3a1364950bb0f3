import { writeSync } from "node:fs";

// Structured JSON lines on stdout, one per event:
//
//   {"level":"info","time":"2026-12-07T12:00:00.000Z","service":"tollgate",…fields,"msg":"…"}
//
// The gateway logs a few dozen kinds of line, always a message with a flat
// object of fields beside it; this is all of the logger it needs, and it
// loads no library (a logging library and its helpers were some 30 modules
// and about 3 MiB of a serving gateway's memory).
//
// Nothing here ever receives a key in clear: callers log display prefixes,
// and no code path logs request headers (a test greps the logs of a whole
// run for every key it used).

export type LogLevel = "debug" | "info" | "warn" | "error";
type LevelOrSilent = LogLevel | "silent";

const RANK: Record<LevelOrSilent, number> = {
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  silent: Infinity,
};

/** Where lines go: each ends in a newline. `flush` writes out anything held. */
export interface LogDestination {
  write(line: string): void;
  flush?(): void;
}

type LogFn = {
  (msg: string): void;
  (fields: Record<string, unknown>, msg?: string): void;
};

export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  isLevelEnabled(level: LogLevel): boolean;
  /** Writes out what is held, synchronously (before the process exits). */
  flush(): void;
}

/**
 * Log lines gathered during one turn of the event loop and written together:
 * one write for many requests instead of one each, and no line waits longer
 * than that turn. `flush` writes synchronously, for the moment before exit.
 *
 * Whatever reads the log may go away (a collector that died, `| head`).
 * Then the lines are dropped, once said on stderr, and the gateway goes on
 * serving and stops as it should: a log nobody reads is no reason to cut
 * requests or to hang a shutdown.
 */
class BatchedStdout implements LogDestination {
  private lines: string[] = [];
  private scheduled = false;
  private closed = false;

  constructor() {
    process.stdout.on("error", (err) => this.lost(err));
  }

  write(line: string): void {
    if (this.closed) return;
    this.lines.push(line);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }

  flush(): void {
    this.scheduled = false;
    const out = this.take();
    if (!out || this.closed) return;
    try {
      writeSync(1, out);
    } catch (err) {
      this.lost(err);
    }
  }

  private drain(): void {
    this.scheduled = false;
    const out = this.take();
    if (out && !this.closed) process.stdout.write(out);
  }

  private take(): string {
    if (this.lines.length === 0) return "";
    const out = this.lines.join("");
    this.lines = [];
    return out;
  }

  private lost(err: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.lines = [];
    const code = (err as { code?: unknown })?.code;
    try {
      writeSync(
        2,
        `tollgate: the log output was closed (${String(code ?? err)}); log lines are dropped from here on, serving goes on\n`,
      );
    } catch {
      // stderr is gone too: nothing left to tell.
    }
  }
}

/** How deep a logged object is followed; below that it is named, not written. */
const MAX_DEPTH = 8;

/**
 * A value JSON can write as it should read in a log: an error as its type,
 * message, stack and own fields (its code, its cause), where JSON would make
 * `{}` of it; a cycle as "[Circular]"; a BigInt as its number; a property
 * whose getter throws as "[unreadable]". Plain values pass as they are.
 */
function loggable(value: unknown, ancestors: object[] = []): unknown {
  if (typeof value === "bigint") return Number(value);
  if (typeof value !== "object" || value === null) return value;
  if (ancestors.includes(value)) return "[Circular]";
  if (ancestors.length >= MAX_DEPTH) return "[too deep]";
  const inner = [...ancestors, value];
  if (Array.isArray(value)) return value.map((v) => loggable(v, inner));
  if (typeof (value as { toJSON?: unknown }).toJSON === "function") return value;
  const out: Record<string, unknown> = {};
  if (value instanceof Error) {
    out.type = value.constructor.name;
    out.message = value.message;
    out.stack = value.stack;
    // A cause given to the constructor is not an own enumerable field.
    if (value.cause !== undefined) out.cause = loggable(value.cause, inner);
  }
  for (const key of Object.keys(value)) {
    try {
      out[key] = loggable((value as Record<string, unknown>)[key], inner);
    } catch {
      out[key] = "[unreadable]";
    }
  }
  return out;
}

/** A field's JSON, or undefined for what JSON leaves out. Never throws: a line is always written. */
function fieldJson(value: unknown): string | undefined {
  try {
    // Strings and numbers, nearly every field, go straight to JSON.
    return JSON.stringify(
      typeof value === "object" || typeof value === "bigint" ? loggable(value) : value,
    );
  } catch (err) {
    return JSON.stringify(`[unserializable: ${(err as Error).message}]`);
  }
}

function line(
  level: LogLevel,
  fields: Record<string, unknown> | undefined,
  msg: string | undefined,
): string {
  let out = `{"level":"${level}","time":"${new Date().toISOString()}","service":"tollgate"`;
  if (fields) {
    for (const key of Object.keys(fields)) {
      let json: string | undefined;
      try {
        json = fieldJson(fields[key]);
      } catch {
        json = '"[unreadable]"'; // a getter that throws
      }
      if (json !== undefined) out += `,${JSON.stringify(key)}:${json}`;
    }
  }
  if (msg !== undefined) out += `,"msg":${JSON.stringify(msg)}`;
  return `${out}}\n`;
}

export function createLogger(
  level: LevelOrSilent,
  destination: LogDestination = new BatchedStdout(),
): Logger {
  const min = RANK[level];
  const at = (l: LogLevel): LogFn => {
    if (RANK[l] < min) return () => {};
    return (first: string | Record<string, unknown>, msg?: string) => {
      destination.write(
        typeof first === "string" ? line(l, undefined, first) : line(l, first, msg),
      );
    };
  };
  return {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    isLevelEnabled: (l) => RANK[l] >= min,
    flush: () => destination.flush?.(),
  };
}

/** A logger that drops everything (tests, one-shot CLI commands). */
export function silentLogger(): Logger {
  return createLogger("silent", { write() {} });
}
