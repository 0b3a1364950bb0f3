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
import { PRIVATE_DIR, PRIVATE_FILE } from "../util/private-files.ts";

/**
 * One usage event: a response's tokens charged to a key. `seq` is unique and
 * increasing per instance, which is what makes a replay idempotent.
 */
export interface UsageEvent {
  seq: number;
  keyId: string;
  /** Epoch ms when the usage became known. */
  at: number;
  tokens: number;
  requests: number;
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

function formatLine(e: UsageEvent): string {
  return `${JSON.stringify([e.seq, e.keyId, e.at, e.tokens, e.requests])}\n`;
}

function parseLine(line: string): UsageEvent | null {
  try {
    const v: unknown = JSON.parse(line);
    if (!Array.isArray(v) || v.length !== 5) return null;
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
    return { seq, keyId, at, tokens, requests };
  } catch {
    return null;
  }
}
