import {
  type BigIntStats,
  closeSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
} from "node:fs";
import { dirname } from "node:path";
import { PRIVATE_DIR } from "../../util/private-files.ts";
import { writeFileAtomic } from "./atomic.ts";
import { DEFAULT_LOCK, type LockOptions, withFileLock } from "./lock.ts";
import { readSnapshot, type Snapshot } from "./records.ts";
import { KeyFileError, type RawFile } from "./schema.ts";

/** What a change made of the draft: its result, and whether to write the draft. */
export interface Change<T> {
  result: T;
  write: boolean;
}

/**
 * The legacy JSON file as a small document store. Reads take no lock: every
 * write renames a complete new file into place, so a reader always opens one
 * whole version. The parsed file is kept while the file on disk is the same
 * one (same inode, size and times to the nanosecond), so a lookup costs one
 * stat(2). Writes are serialised within this process by a promise chain and
 * across processes by a lock file, and each one starts again from the file
 * on disk, which another process may have replaced.
 */
export class KeyDocument {
  private cached: { stat: BigIntStats; snapshot: Snapshot } | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private readonly lockPath: string;

  constructor(
    readonly path: string,
    private readonly lock: LockOptions = DEFAULT_LOCK,
  ) {
    this.lockPath = `${path}.lock`;
  }

  /** The current file, parsed and indexed. Throws KeyFileError if it is missing or invalid. */
  read(): Snapshot {
    const st = statSync(this.path, { bigint: true, throwIfNoEntry: false });
    if (!st) throw new KeyFileError(`legacy key file ${this.path} does not exist`);
    if (this.cached && sameVersion(this.cached.stat, st)) return this.cached.snapshot;
    // Stat and read through one descriptor: the version cached is the one read,
    // even if the file is replaced in between.
    const fd = openSync(this.path, "r");
    try {
      const stat = fstatSync(fd, { bigint: true });
      const snapshot = readSnapshot(readFileSync(fd, "utf8"), this.path);
      this.cached = { stat, snapshot };
      return snapshot;
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Applies `change` to a copy of the current file and writes it back when it
   * asks to. The new version is validated before anything is written, so a
   * failed change leaves the file as it was. Resolves to the change's result
   * and the file as it stands after it.
   */
  mutate<T>(
    change: (draft: RawFile, current: Snapshot) => Change<T>,
  ): Promise<{ result: T; snapshot: Snapshot }> {
    return this.exclusive(() => {
      const current = this.read();
      const draft = structuredClone(current.raw);
      const { result, write } = change(draft, current);
      return { result, snapshot: write ? this.write(draft) : current };
    });
  }

  /** Creates `{"keys":[]}` and its folder unless the file exists; true if it was created. */
  create(): Promise<boolean> {
    mkdirSync(dirname(this.path), { recursive: true, mode: PRIVATE_DIR });
    return this.exclusive(() => {
      if (statSync(this.path, { throwIfNoEntry: false })) return false;
      this.write({ keys: [] });
      return true;
    });
  }

  /** Waits for writes already started. */
  async settle(): Promise<void> {
    await this.tail;
  }

  /** Runs `fn` as the only writer: after this process's earlier writes, holding the lock file. */
  private exclusive<T>(fn: () => T): Promise<T> {
    const run = this.tail.then(() => withFileLock(this.lockPath, fn, this.lock));
    this.tail = run.catch(() => {});
    return run;
  }

  private write(draft: RawFile): Snapshot {
    // Two-space indentation, as the old gateway wrote it.
    const text = `${JSON.stringify(draft, null, 2)}\n`;
    const snapshot = readSnapshot(text, this.path);
    writeFileAtomic(this.path, text);
    // We hold the lock, so the file on disk is the one just written.
    this.cached = { stat: statSync(this.path, { bigint: true }), snapshot };
    return snapshot;
  }
}

function sameVersion(a: BigIntStats, b: BigIntStats): boolean {
  return (
    a.ino === b.ino &&
    a.dev === b.dev &&
    a.size === b.size &&
    a.mtimeNs === b.mtimeNs &&
    a.ctimeNs === b.ctimeNs
  );
}
