import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { exportRow } from "../../../test/contract/storage-bulk.ts";
import { type TestDatabase, testPostgres } from "../../../test/harness/postgres.ts";
import { describeNeedingPostgres, NEEDS_SERVER } from "../../../test/harness/require-postgres.ts";
import { knownMigrations } from "../../ops/backup/schema-version.ts";
import { appliedMigrations } from "./applied-migrations.ts";
import { tryBackupLock } from "./backup-lock.ts";
import { dataCountsAt } from "./counts.ts";
import { openPostgresStorage } from "./index.ts";
import { otherTollgateSessions, withOwnConnection } from "./own-connection.ts";
import { readSnapshot } from "./snapshot.ts";

// What backup and restore ask of PostgreSQL on connections of their own.

const target = await testPostgres();
setDefaultTimeout(target.kind === "pglite" ? 30_000 : 10_000);

const shipped = knownMigrations("postgres");

const dbs: TestDatabase[] = [];
afterEach(async () => {
  for (const db of dbs.splice(0)) await db.drop();
});

async function database(keys: number): Promise<string> {
  const db = await target.create();
  dbs.push(db);
  const s = openPostgresStorage({ url: db.url, poolMax: 1 });
  await s.migrate();
  await s.importKeys?.(
    Array.from({ length: keys }, (_, i) => exportRow(i, 2)),
    { skipExisting: false },
  );
  await s.close();
  return db.url;
}

describe(`backup access to postgres (${target.kind})`, () => {
  test("the migrations table: every shipped migration, or none without the table", async () => {
    const url = await database(0);
    expect(await withOwnConnection(url, "tollgate-test", appliedMigrations)).toEqual({
      applied: shipped.length,
      latestAt: shipped[shipped.length - 1]?.when ?? null,
    });
    await withOwnConnection(url, "tollgate-test", (sql) => sql`drop schema drizzle cascade`);
    expect(await withOwnConnection(url, "tollgate-test", appliedMigrations)).toEqual({
      applied: 0,
      latestAt: null,
    });
  });

  test("a snapshot reads every key with its buckets, in batches, and the same counts", async () => {
    const url = await database(7);
    const read = await readSnapshot(url, "tollgate-test", async (snap) => {
      const batches: number[] = [];
      const ids: string[] = [];
      for await (const batch of snap.keys(3)) {
        batches.push(batch.length);
        for (const { key, buckets } of batch) {
          ids.push(key.id);
          expect(buckets).toHaveLength(2);
        }
      }
      const models: unknown[] = [];
      for await (const rows of snap.modelUsage(3)) models.push(...rows);
      return {
        batches,
        ids,
        counts: await snap.counts(),
        checkpoints: await snap.checkpoints(),
        models,
      };
    });
    expect(read.batches).toEqual([3, 3, 1]);
    expect(read.ids).toEqual(Array.from({ length: 7 }, (_, i) => exportRow(i).key.id));
    expect(read.counts).toEqual(await dataCountsAt(url, "tollgate-test"));
    expect(read.counts.usageBuckets).toBe(14);
    expect(read.checkpoints).toEqual([]);
    expect(read.models).toEqual([]);
  });
});

const server = target.shared ? undefined : NEEDS_SERVER;

describeNeedingPostgres("the backup lock and other sessions", server, () => {
  test("one holder at a time; released, it can be taken again", async () => {
    const url = await database(0);
    const first = await tryBackupLock(url);
    expect(first).not.toBeNull();
    expect(await tryBackupLock(url)).toBeNull();
    await first?.release();
    await first?.release();
    const again = await tryBackupLock(url);
    expect(again).not.toBeNull();
    await again?.release();
  });

  test("a gateway's connections count as other sessions; our own do not", async () => {
    const url = await database(0);
    expect(await otherTollgateSessions(url, "tollgate-restore")).toBe(0);
    const gateway = openPostgresStorage({ url, poolMax: 1 });
    try {
      await gateway.ping();
      expect(await otherTollgateSessions(url, "tollgate-restore")).toBe(1);
    } finally {
      await gateway.close();
    }
  });
});
