import type { Checkpoint } from "./logical-format.ts";

/**
 * The journal checkpoints a database holds after a restore.
 *
 * A gateway's journal holds charges not yet known to be in the database,
 * numbered per instance; on start it replays those above its checkpoint. The
 * backup's checkpoints describe the backup's data, not the journals as they
 * are now: a journal may hold charges numbered above the backup's checkpoint
 * that the old data already had (replayed twice), or, after an earlier
 * restore reset the numbering, charges numbered below a higher checkpoint
 * from the backup (lost). What the current database says is what the journals
 * were last flushed against, so an instance the current database knows keeps
 * its current checkpoint: its journal then replays exactly the charges that
 * never reached any database, once, on top of the restored data. Instances
 * the current database does not know (a fresh or replaced database) take the
 * backup's value.
 */
export function checkpointsAfterRestore(
  backup: Checkpoint[],
  current: Checkpoint[],
): { checkpoints: Checkpoint[]; kept: number; fromBackup: number } {
  const merged = new Map<string, number>();
  for (const c of backup) merged.set(c.instanceId, c.lastSeq);
  for (const c of current) merged.set(c.instanceId, c.lastSeq);
  const fromBackup = backup.filter((b) => !current.some((c) => c.instanceId === b.instanceId));
  return {
    checkpoints: [...merged]
      .map(([instanceId, lastSeq]) => ({ instanceId, lastSeq }))
      .sort((a, b) => (a.instanceId < b.instanceId ? -1 : a.instanceId > b.instanceId ? 1 : 0)),
    kept: current.length,
    fromBackup: fromBackup.length,
  };
}
