import {
  closeSync,
  existsSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import type { TokenUsage } from "../models/token-usage.ts";
import { PRIVATE_DIR, PRIVATE_FILE } from "../util/private-files.ts";

/** What a charge was made of: enough to replay it exactly and to keep per-model history. */
export interface ChargeDetail {
  /** The model the request went upstream with. */
  model: string;
  /** Raw tokens by kind, as the upstream reported them (an estimate: output). */
  usage: TokenUsage;
  /** Spend in micro-units of the models file's currency. */
  spendMicros: number;
}

/**
 * One usage event: a response's tokens charged to a key. `seq` is unique and
 * increasing per instance, which is what makes a replay idempotent.
 */
export interface UsageEvent {
  seq: number;
  keyId: string;
  /** Epoch ms when the usage became known. */
  at: number;
  /** What the key's quotas are charged: weighted units (raw tokens without a models file). */
  tokens: number;
  requests: number;
  /**
   * Absent in journals written before models files existed; such an event
   * replays as it was charged (units = raw tokens, model unknown).
   */
  detail?: ChargeDetail;
}

export interface ReplayResult {
  events: UsageEvent[];
  /** Lines that could not be read (a record torn by a crash mid-write). */
  skipped: number;
}

/**
 * Append-only journal of usage events, one JSON line each. Every event is
 * written with one write(2) before it counts anywhere else, so a process crash
 * loses nothing: the page cache survives it and the next start replays the
 * journal. Lines that do not parse (a torn last record) are skipped.
 */
export class Journal {
  private fd: number;

  private constructor(
    private readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  static open(dir: string, instanceId: string): Journal {
    mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR });
    const path = join(dir, `${instanceId}.journal`);
    const fd = openSync(path, "a+", PRIVATE_FILE);
    // A record torn by a crash has no newline: end it, so the next record
    // starts on a line of its own and stays readable.
    const size = fstatSync(fd).size;
    if (size > 0) {
      const last = Buffer.alloc(1);
      readSync(fd, last, 0, 1, size - 1);
      if (last[0] !== 0x0a) writeSync(fd, "\n");
    }
    return new Journal(path, fd);
  }

  get file(): string {
    return this.path;
  }

  append(e: UsageEvent): void {
    writeSync(this.fd, formatLine(e));
  }

  size(): number {
    return fstatSync(this.fd).size;
  }

  read(): ReplayResult {
    if (!existsSync(this.path)) return { events: [], skipped: 0 };
    const events: UsageEvent[] = [];
    let skipped = 0;
    for (const line of readFileSync(this.path, "utf8").split("\n")) {
      if (line === "") continue;
      const e = parseLine(line);
      if (e) events.push(e);
      else skipped++;
    }
    return { events, skipped };
  }

  /** Everything in the journal is in the database: start afresh. */
  truncate(): void {
    ftruncateSync(this.fd, 0);
  }

  /**
   * Rewrite the journal to hold only `events` (those not yet in the
   * database). Written beside it and renamed over it, so a crash leaves
   * either the old or the new file, never half of one.
   */
  compact(events: UsageEvent[]): void {
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, "w", PRIVATE_FILE);
    try {
      writeSync(fd, events.map(formatLine).join(""));
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    closeSync(this.fd);
    this.fd = openSync(this.path, "a+", PRIVATE_FILE);
  }

  close(): void {
    closeSync(this.fd);
  }
}

// A line is a JSON array: [seq, keyId, at, units, requests], then, when the
// charge has a detail, model, input, output, cache read, cache write, spend.
function formatLine(e: UsageEvent): string {
  const d = e.detail;
  const line = d
    ? [
        e.seq,
        e.keyId,
        e.at,
        e.tokens,
        e.requests,
        d.model,
        d.usage.input,
        d.usage.output,
        d.usage.cacheRead,
        d.usage.cacheWrite,
        d.spendMicros,
      ]
    : [e.seq, e.keyId, e.at, e.tokens, e.requests];
  return `${JSON.stringify(line)}\n`;
}

function parseDetail(v: unknown[]): ChargeDetail | null {
  const [model, input, output, cacheRead, cacheWrite, spendMicros] = v;
  const counts = [input, output, cacheRead, cacheWrite, spendMicros];
  if (typeof model !== "string" || !counts.every((c) => Number.isSafeInteger(c))) return null;
  return {
    model,
    usage: {
      input: input as number,
      output: output as number,
      cacheRead: cacheRead as number,
      cacheWrite: cacheWrite as number,
    },
    spendMicros: spendMicros as number,
  };
}

function parseLine(line: string): UsageEvent | null {
  try {
    const v: unknown = JSON.parse(line);
    if (!Array.isArray(v) || (v.length !== 5 && v.length !== 11)) return null;
    const [seq, keyId, at, tokens, requests] = v;
    if (
      !Number.isSafeInteger(seq) ||
      typeof keyId !== "string" ||
      !Number.isSafeInteger(at) ||
      !Number.isSafeInteger(tokens) ||
      !Number.isSafeInteger(requests)
    ) {
      return null;
    }
    if (v.length === 5) return { seq, keyId, at, tokens, requests };
    const detail = parseDetail(v.slice(5));
    return detail ? { seq, keyId, at, tokens, requests, detail } : null;
  } catch {
    return null;
  }
}
