import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  createReadStream,
  createWriteStream,
  fsyncSync,
  linkSync,
  openSync,
  readSync,
  rmSync,
  unlinkSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { type Duplex, PassThrough, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import { PRIVATE_FILE } from "../../util/private-files.ts";
import { BackupError } from "./errors.ts";

// File plumbing shared by every format: temporary names that listings ignore,
// durable writes (fsync, then rename or link into place), gzip and SHA-256 in
// one streamed pass, so a backup never has to fit in memory.

export interface Written {
  bytes: number;
  sha256: string;
}

/** A hidden temporary name beside `name` in `dir`; `backups list` and retention never see it. */
export function tempPath(dir: string, name: string): string {
  return join(dir, `.${basename(name)}.tmp-${randomBytes(4).toString("hex")}`);
}

export function fsyncFile(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Makes a rename or unlink in `dir` durable. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Puts a finished temporary file in place under its final name, never
 * replacing an existing file (link fails on an existing name, unlike rename).
 */
export function publish(tmp: string, path: string): void {
  try {
    linkSync(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      throw new BackupError(`${path} already exists; not replacing it`);
    }
    throw err;
  }
  unlinkSync(tmp);
  fsyncDir(dirname(path));
}

export function removeQuietly(...paths: string[]): void {
  for (const p of paths) rmSync(p, { force: true, recursive: false });
}

/** A SQLite file with its possible companions. */
export function removeSqliteFiles(path: string): void {
  removeQuietly(path, `${path}-wal`, `${path}-shm`, `${path}-journal`);
}

function hashTap(state: { hash: ReturnType<typeof createHash>; bytes: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      state.hash.update(chunk);
      state.bytes += chunk.length;
      done(null, chunk);
    },
  });
}

/** Copies `src` to a new file `dest`, gzipped or as it is, hashing what is written; fsynced. */
export async function writeFrom(src: string, dest: string, gzip: boolean): Promise<Written> {
  const state = { hash: createHash("sha256"), bytes: 0 };
  await pipeline(
    createReadStream(src),
    gzip ? createGzip() : new PassThrough(),
    hashTap(state),
    createWriteStream(dest, { flags: "wx", mode: PRIVATE_FILE }),
  );
  fsyncFile(dest);
  return { bytes: state.bytes, sha256: state.hash.digest("hex") };
}

/** Decompresses (or copies) `src` into a new file `dest`. Rejects on damaged gzip data. */
export async function expandTo(src: string, dest: string, gzip: boolean): Promise<void> {
  await pipeline(
    createReadStream(src),
    gzip ? createGunzip() : new PassThrough(),
    createWriteStream(dest, { flags: "wx", mode: PRIVATE_FILE }),
  );
}

export async function sha256File(path: string): Promise<Written> {
  const state = { hash: createHash("sha256"), bytes: 0 };
  for await (const chunk of createReadStream(path)) {
    state.hash.update(chunk as Buffer);
    state.bytes += (chunk as Buffer).length;
  }
  return { bytes: state.bytes, sha256: state.hash.digest("hex") };
}

/** The first `n` bytes of a file (fewer when it is shorter). */
export function headOf(path: string, n: number): Buffer {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(n);
    const got = readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

/**
 * Text written to a new file as it is produced, optionally gzipped, hashed
 * on the way out. `write` waits while the file falls behind.
 */
export class PayloadWriter {
  private readonly state = { hash: createHash("sha256"), bytes: 0 };
  private readonly head: Duplex;
  private readonly done: Promise<void>;
  private failure: unknown;

  constructor(
    readonly path: string,
    gzip: boolean,
  ) {
    this.head = gzip ? createGzip() : new PassThrough();
    this.done = pipeline(
      this.head,
      hashTap(this.state),
      createWriteStream(path, { flags: "wx", mode: PRIVATE_FILE }),
    );
    this.done.catch((err) => {
      this.failure = err;
    });
  }

  async write(text: string): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.head.write(text)) {
      await Promise.race([
        new Promise<void>((resolve) => this.head.once("drain", () => resolve())),
        this.done,
      ]);
    }
  }

  async finish(): Promise<Written> {
    this.head.end();
    await this.done;
    fsyncFile(this.path);
    return { bytes: this.state.bytes, sha256: this.state.hash.digest("hex") };
  }

  /** Stops writing after a failure; the caller removes the file. */
  abort(): void {
    this.head.destroy();
    this.done.catch(() => {});
  }
}

/** Lines of a (possibly gzipped) text file, streamed. Rejects on damaged gzip data. */
export async function* readLines(path: string, gzip: boolean): AsyncGenerator<string> {
  const source = createReadStream(path);
  const stream = gzip ? source.pipe(createGunzip()) : source;
  // A gunzip error does not reach the piped source: forward it to what we read.
  source.on("error", (err) => stream.destroy(err));
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let rest = "";
  try {
    for await (const chunk of stream) {
      const parts = (rest + decoder.decode(chunk as Buffer, { stream: true })).split("\n");
      rest = parts.pop() ?? "";
      yield* parts;
    }
    rest += decoder.decode();
    if (rest !== "") yield rest;
  } finally {
    source.destroy();
  }
}
