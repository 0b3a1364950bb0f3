// Fixtures for the backup tests.
import { Database } from "bun:sqlite";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { drizzle } from "drizzle-orm/bun-sqlite";
import { migrate } from "drizzle-orm/bun-sqlite/migrator";
import type { DatabaseTarget } from "../../src/ops/backup/create.ts";
import { openPostgresStorage } from "../../src/storage/postgres/index.ts";
import { openSqliteStorage } from "../../src/storage/sqlite/index.ts";
import type { KeyExport, ModelTotal, Storage } from "../../src/storage/types.ts";
import { exportRow } from "../contract/storage-bulk.ts";
import { testPostgres } from "./postgres.ts";

export const rows = (n: number, buckets = 3, from = 0): KeyExport[] =>
  Array.from({ length: n }, (_, i) => exportRow(from + i, buckets));

export interface Fixture {
  dir: string;
  target: DatabaseTarget;
  open(): Storage;
  cleanup(): Promise<void>;
}

export function tempDir(prefix = "tollgate-backup-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A migrated SQLite database holding `data` and the given checkpoints, closed. */
export async function sqliteFixture(
  data: KeyExport[],
  checkpoints: Array<[string, number]> = [],
): Promise<Fixture> {
  const dir = tempDir();
  const path = join(dir, "tollgate.db");
  const open = () => openSqliteStorage(path);
  await fill(open(), data, checkpoints);
  return {
    dir,
    target: { type: "sqlite", path },
    open,
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The same on a fresh PostgreSQL database (server or PGlite, see test/harness/postgres.ts). */
export async function postgresFixture(
  data: KeyExport[],
  checkpoints: Array<[string, number]> = [],
): Promise<Fixture & { shared: boolean }> {
  const pg = await testPostgres();
  const db = await pg.create();
  const dir = tempDir();
  const open = () => openPostgresStorage({ url: db.url, poolMax: 1 });
  await fill(open(), data, checkpoints);
  return {
    dir,
    shared: pg.shared,
    target: { type: "postgres", url: db.url },
    open,
    cleanup: async () => {
      rmSync(dir, { recursive: true, force: true });
      await db.drop();
    },
  };
}

async function fill(s: Storage, data: KeyExport[], checkpoints: Array<[string, number]>) {
  try {
    await s.migrate();
    for (let i = 0; i < data.length; i += 500) {
      await s.importKeys?.(data.slice(i, i + 500), { skipExisting: false });
    }
    for (const [instanceId, lastSeq] of checkpoints) {
      await s.applyUsage({ instanceId, firstSeq: lastSeq, lastSeq, keys: [] });
    }
  } finally {
    await s.close();
  }
}

/** Every key with its buckets, and every checkpoint, read through the storage. */
export async function snapshot(
  fx: Pick<Fixture, "open">,
): Promise<{ keys: KeyExport[]; checkpoints: Array<{ instanceId: string; lastSeq: number }> }> {
  const s = fx.open();
  try {
    const keys: KeyExport[] = [];
    for await (const b of s.exportKeys?.(200) ?? []) keys.push(...b);
    const checkpoints = ((await s.listCheckpoints?.()) ?? []).sort((a, b) =>
      a.instanceId.localeCompare(b.instanceId),
    );
    return { keys, checkpoints };
  } finally {
    await s.close();
  }
}

export type Damage = "truncated" | "flipped" | "empty";

/** Damages a file the way disks and transfers do. */
export function damage(path: string, how: Damage): void {
  const size = statSync(path).size;
  if (how === "empty") writeFileSync(path, "");
  else if (how === "truncated") truncateSync(path, Math.floor(size * 0.6));
  else {
    const bytes = readFileSync(path);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] ?? 0) ^ 0x10;
    writeFileSync(path, bytes);
  }
}

/**
 * A SQLite database at `path` with only the first `count` of the shipped
 * migrations applied: what an older Tollgate left behind. Drizzle applies
 * whatever its journal lists, so it is given a copy of the folder whose
 * journal stops at `count`.
 */
export function sqliteAtMigration(path: string, count: number): void {
  const shipped = fileURLToPath(new URL("../../migrations/sqlite", import.meta.url));
  const folder = tempDir("tollgate-old-migrations-");
  try {
    const journal = JSON.parse(readFileSync(join(shipped, "meta", "_journal.json"), "utf8")) as {
      entries: Array<{ tag: string }>;
    };
    journal.entries = journal.entries.slice(0, count);
    mkdirSync(join(folder, "meta"));
    writeFileSync(join(folder, "meta", "_journal.json"), JSON.stringify(journal));
    for (const e of journal.entries) {
      copyFileSync(join(shipped, `${e.tag}.sql`), join(folder, `${e.tag}.sql`));
    }
    const sqlite = new Database(path, { create: true });
    try {
      migrate(drizzle({ client: sqlite }), { migrationsFolder: folder });
    } finally {
      sqlite.close();
    }
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

/** Per-model history on the fixture's first key, as a flush would write it; returns what it wrote. */
export async function seedModelUsage(fx: Fixture, instanceId = "i_models"): Promise<ModelTotal[]> {
  const s = fx.open();
  try {
    const keyId = "key_import_0000";
    const row = (model: string, n: number) => ({
      keyId,
      model,
      bucketStart: 3_600_000 * n,
      input: 10 * n,
      output: 3 * n,
      cacheRead: n,
      cacheWrite: 2 * n,
      units: 40 * n,
      requests: n,
      spendMicros: 9 * n,
    });
    await s.applyUsage({
      instanceId,
      firstSeq: 1,
      lastSeq: 1,
      keys: [{ keyId, tokens: 120, requests: 3, lastUsedAt: 1, buckets: [] }],
      models: [row("glm-4.7", 1), row("glm-5", 2)],
    });
    return await s.modelUsage(0, 10 * 3_600_000);
  } finally {
    await s.close();
  }
}

/** Every per-model row the fixture's database holds. */
export async function modelHistory(fx: Fixture): Promise<ModelTotal[]> {
  const s = fx.open();
  try {
    return await s.modelUsage(0, 10 * 3_600_000);
  } finally {
    await s.close();
  }
}
