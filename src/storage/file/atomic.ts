import { randomBytes } from "node:crypto";
import {
  closeSync,
  fchownSync,
  fsyncSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";

/**
 * Replaces `path` with `text` so that a reader, or a crash at any moment,
 * sees either the old file or the new one, never a mix: the text goes to a
 * temporary file in the same folder (rename is atomic only within one file
 * system), is flushed to disk, and is then renamed over the original.
 */
export function writeFileAtomic(path: string, text: string): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  const before = statSync(path, { throwIfNoEntry: false });
  // A new file holds keys in clear (legacy ones): readable by its owner only.
  const fd = openSync(tmp, "wx", before ? before.mode & 0o777 : 0o600);
  try {
    // The CLI run as root must not leave the server a file it cannot write.
    if (before && (before.uid !== process.getuid?.() || before.gid !== process.getgid?.())) {
      try {
        fchownSync(fd, before.uid, before.gid);
      } catch {
        // Not permitted: then we are not root, and the file is ours anyway.
      }
    }
    writeFileSync(fd, text);
    fsyncSync(fd);
    closeSync(fd);
  } catch (err) {
    closeQuietly(fd);
    unlinkQuietly(tmp);
    throw err;
  }
  try {
    renameSync(tmp, path);
  } catch (err) {
    unlinkQuietly(tmp);
    throw err;
  }
  syncFolder(dir);
}

/** Makes the rename itself durable: the new directory entry is on disk too. */
function syncFolder(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // Some file systems cannot fsync a directory; the data itself is synced.
  } finally {
    if (fd !== undefined) closeQuietly(fd);
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already closed.
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Never created, or already gone.
  }
}
