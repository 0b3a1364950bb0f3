import { rmSync } from "node:fs";
import { listBackups } from "./list.ts";

/**
 * Keeps the newest `keep` sound scheduled backups of `source` in `dir` and
 * deletes the older scheduled ones (0 keeps everything). Manual and
 * pre-restore backups, backups of other databases, damaged newer ones and
 * every other file are never touched. Call it only after a backup succeeded,
 * so failing backups never eat the good ones.
 */
export function pruneBackups(dir: string, keep: number, source: string): string[] {
  if (keep <= 0) return [];
  const ours = listBackups(dir).filter(
    (b) => b.manifest?.origin === "scheduled" && b.manifest.source === source,
  );
  let sound = 0;
  let cut = -1;
  ours.forEach((b, i) => {
    if (cut === -1 && b.status === "ok" && ++sound === keep) cut = i;
  });
  if (cut === -1) return [];
  const deleted: string[] = [];
  for (const b of ours.slice(cut + 1)) {
    // The payload first: a crash in between leaves a manifest whose payload is
    // missing, which the next run deletes, never a payload nobody lists.
    rmSync(b.path, { force: true });
    rmSync(b.manifestPath, { force: true });
    deleted.push(b.path);
  }
  return deleted;
}
