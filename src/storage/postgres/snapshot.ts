import { appliedMigrations } from "./applied-migrations.ts";
import { dataCounts } from "./counts.ts";
import {
  exportAuditIfAny,
  exportCheckpoints,
  exportKeysWithBuckets,
  exportModelUsageIfAny,
} from "./export-reads.ts";
import { type Tx, withOwnConnection } from "./own-connection.ts";

// One repeatable-read, read-only transaction on a connection of its own: every
// read made through it sees the same snapshot, however busy the gateways are,
// and pg_dump can be pointed at that snapshot too.

function snapshotReader(tx: Tx) {
  return {
    /** The snapshot's id, for `pg_dump --snapshot`; valid while the transaction lasts. */
    async exportId(): Promise<string | undefined> {
      const [row] = await tx<{ snapshot: string }[]>`select pg_export_snapshot() as snapshot`;
      return row?.snapshot;
    },
    counts: () => dataCounts(tx),
    appliedMigrations: () => appliedMigrations(tx),
    keys: (batch: number) => exportKeysWithBuckets(tx, batch),
    checkpoints: () => exportCheckpoints(tx),
    modelUsage: (batch: number) => exportModelUsageIfAny(tx, batch),
    audit: (batch: number) => exportAuditIfAny(tx, batch),
  };
}

export type SnapshotReader = ReturnType<typeof snapshotReader>;

/** Runs `read` in a snapshot of the database at `url`, on a connection named `applicationName`. */
export async function readSnapshot<T>(
  url: string,
  applicationName: string,
  read: (snapshot: SnapshotReader) => Promise<T>,
): Promise<T> {
  return withOwnConnection(
    url,
    applicationName,
    async (sql) =>
      (await sql.begin("isolation level repeatable read read only", (tx) =>
        read(snapshotReader(tx)),
      )) as T,
  );
}
