import { once } from "node:events";
import { finished } from "node:stream/promises";
import { getTableColumns } from "drizzle-orm";
import type postgres from "postgres";
import { auditToRow } from "../audit-rows.ts";
import type { AuditEntry, KeyExport, ModelUsage } from "../types.ts";
import { dataCounts } from "./counts.ts";
import { KEY_CHANNEL } from "./index.ts";
import { upsertModelUsage } from "./model-usage.ts";
import { withOwnConnection } from "./own-connection.ts";
import { apiKeys } from "./schema.ts";

// The SQL of a restore: everything it writes, inside the one transaction
// `inRestoreTransaction` holds. The caller (ops/backup) decides what to write
// and checks the result; only this file speaks to the tables.

type Tx = postgres.TransactionSql;

/** The tables a restore replaces, in the order a usage flush locks them. */
const REPLACED = ["usage_checkpoints", "api_keys", "usage_buckets", "model_usage"] as const;
/** Tables an archive's rows are copied into; keys first, their usage refers to them. */
export const COPIED_TABLES = ["api_keys", "usage_buckets", "model_usage"] as const;

/** Bucket rows per INSERT. */
const BUCKET_CHUNK = 2500;

/** The api_keys columns by database name, from the schema: no second list to keep in step. */
const KEY_COLUMNS = Object.entries(getTableColumns(apiKeys)).map(
  ([prop, column]) => [prop as keyof KeyExport["key"], column.name] as const,
);

export interface Checkpoint {
  instanceId: string;
  lastSeq: number;
}

/** A chunk of an archive's table, as COPY text lines under the archive's own column list. */
export interface CopyChunk {
  columns: string[];
  lines: string[];
}

function restoreWriter(tx: Tx) {
  return {
    /**
     * Waits for in-flight usage flushes, then holds every writer off until
     * commit; the lock order is a flush's, so the two cannot deadlock.
     */
    async lockAll(): Promise<void> {
      await tx`set local lock_timeout = '30s'`;
      await tx.unsafe(`lock table ${REPLACED.join(", ")} in access exclusive mode`);
    },

    async checkpoints(): Promise<Checkpoint[]> {
      const rows = await tx<{ instance_id: string; last_seq: string }[]>`
        select instance_id, last_seq from usage_checkpoints`;
      return rows.map((r) => ({ instanceId: r.instance_id, lastSeq: Number(r.last_seq) }));
    },

    /** Gateways still connected drop their cached copy of every key. */
    async notifyEveryKey(): Promise<void> {
      await tx`select count(pg_notify(${KEY_CHANNEL}, id)) from api_keys`;
    },

    async truncateAll(): Promise<void> {
      await tx`truncate model_usage, usage_buckets, api_keys, usage_checkpoints`;
    },

    async insertKeys(rows: KeyExport[]): Promise<void> {
      if (rows.length === 0) return;
      const keys = rows.map(({ key }) => {
        const row: Record<string, unknown> = {};
        // allowed_models goes as the array itself: the driver writes it as JSON for the jsonb column.
        for (const [prop, name] of KEY_COLUMNS) row[name] = key[prop];
        return row;
      });
      await tx`insert into api_keys ${tx(keys, ...KEY_COLUMNS.map(([, name]) => name))}`;
      const buckets = rows.flatMap((r) => r.buckets.map((b) => ({ keyId: r.key.id, ...b })));
      for (let i = 0; i < buckets.length; i += BUCKET_CHUNK) {
        const part = buckets.slice(i, i + BUCKET_CHUNK);
        await tx`
          insert into usage_buckets (key_id, bucket_start, tokens, requests)
          select * from unnest(
            ${tx.array(part.map((b) => b.keyId))}::text[],
            ${tx.array(part.map((b) => b.bucketStart))}::int8[],
            ${tx.array(part.map((b) => b.tokens))}::int8[],
            ${tx.array(part.map((b) => b.requests))}::int8[])`;
      }
    },

    insertModelUsage: (rows: ModelUsage[]) => upsertModelUsage(tx, rows),

    /** Append-only: an entry already here (same id) stays as it is. */
    async insertAudit(entry: AuditEntry): Promise<void> {
      const e = auditToRow(entry);
      await tx`
        insert into audit_log (id, at, actor_kind, actor, action, key_id, key_prefix, key_name, changes)
        values (${entry.id}, ${e.at}, ${e.actorKind}, ${e.actor}, ${e.action}, ${e.keyId},
                ${e.keyPrefix}, ${e.keyName}, ${e.changes})
        on conflict (id) do nothing`;
    },

    /** New audit entries continue after the highest id now present. */
    async continueAuditIds(): Promise<void> {
      await tx`select setval(pg_get_serial_sequence('audit_log', 'id'), coalesce((select max(id) from audit_log), 0) + 1, false)`;
    },

    async insertCheckpoints(list: Checkpoint[], now: number): Promise<void> {
      if (list.length === 0) return;
      await tx`
        insert into usage_checkpoints (instance_id, last_seq, updated_at)
        select * from unnest(
          ${tx.array(list.map((c) => c.instanceId))}::text[],
          ${tx.array(list.map((c) => c.lastSeq))}::int8[],
          ${tx.array(list.map(() => now))}::int8[])`;
    },

    /**
     * Streams an archive's rows of `table` into it with COPY. Throws
     * `UnknownColumnsError` when the archive has columns this schema lacks.
     */
    async copyInto(table: (typeof COPIED_TABLES)[number], chunks: AsyncIterable<CopyChunk>) {
      await copyChunks(tx, table, table, chunks);
    },

    /** The archive's audit entries missing here come back; every entry made since stays. */
    async mergeAudit(chunks: AsyncIterable<CopyChunk>): Promise<void> {
      await tx`create temp table audit_restore (like audit_log) on commit drop`;
      await copyChunks(tx, "audit_log", "audit_restore", chunks);
      await tx`insert into audit_log select * from audit_restore on conflict (id) do nothing`;
    },

    /** Counts and sums of the data tables, to check the restore against its manifest. */
    counts: () => dataCounts(tx),
  };
}

export type RestoreWriter = ReturnType<typeof restoreWriter>;

const DEADLOCK = "40P01";

/**
 * Runs `restore` in ONE transaction on a connection of its own named
 * `applicationName`: any failure rolls everything back.
 */
export async function inRestoreTransaction<T>(
  url: string,
  applicationName: string,
  restore: (db: RestoreWriter) => Promise<T>,
): Promise<T> {
  return withOwnConnection(url, applicationName, async (sql) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return (await sql.begin((tx) => restore(restoreWriter(tx)))) as T;
      } catch (err) {
        // Chosen as the deadlock victim: the transaction rolled back whole, so
        // it can simply run again.
        if ((err as { code?: string }).code === DEADLOCK && attempt < 3) continue;
        throw err;
      }
    }
  });
}

/** The archive's table has columns this version's schema does not know. */
export class UnknownColumnsError extends Error {
  constructor(
    readonly table: string,
    readonly columns: string[],
  ) {
    super(`the archive's ${table} has columns this version does not know (${columns.join(", ")})`);
  }
}

async function copyChunks(
  tx: Tx,
  table: string,
  target: string,
  chunks: AsyncIterable<CopyChunk>,
): Promise<void> {
  const live = await liveColumns(tx, table);
  let sink: Awaited<ReturnType<ReturnType<Tx["unsafe"]>["writable"]>> | undefined;
  for await (const { columns, lines } of chunks) {
    if (!sink) {
      const unknown = columns.filter((c) => !live.includes(c));
      if (unknown.length > 0) throw new UnknownColumnsError(table, unknown);
      // Every name is one of the live table's own (checked just above).
      sink = await tx.unsafe(`copy ${target} (${columns.join(", ")}) from stdin`).writable();
    }
    if (!sink.write(`${lines.join("\n")}\n`)) await once(sink, "drain");
  }
  if (sink) {
    sink.end();
    await finished(sink);
  }
}

async function liveColumns(tx: Tx, table: string): Promise<string[]> {
  const rows = await tx<{ column_name: string }[]>`
    select column_name from information_schema.columns
    where table_schema = 'public' and table_name = ${table}`;
  return rows.map((r) => r.column_name);
}
