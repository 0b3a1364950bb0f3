import type { Config } from "../config.ts";
import { compareRows } from "../storage/compare-rows.ts";
import type { AuditActor, KeyExport, Storage } from "../storage/types.ts";

/** Keys per batch: one batch in memory and one transaction on the target at a time. */
const BATCH = 500;

export class CopyError extends Error {}

/** Where `db copy --to` points: a PostgreSQL URL or a SQLite file. */
export function copyTarget(to: string): Config["storage"] {
  if (/^postgres(ql)?:\/\//.test(to)) return { type: "postgres", url: to };
  const path = to.replace(/^sqlite:(\/\/)?/, "");
  if (path === "" || /^[a-z]+:\/\//i.test(path)) {
    throw new CopyError(`cannot copy to "${to}": give a postgres:// URL or a SQLite file path`);
  }
  return { type: "sqlite", path };
}

export interface CopyTotals {
  keys: number;
  buckets: number;
  lifetimeTokens: number;
  lifetimeRequests: number;
  bucketTokens: number;
}

export interface CopyReport {
  source: CopyTotals;
  target: CopyTotals;
  skipped: number;
  checkpoints: number;
}

const emptyTotals = (): CopyTotals => ({
  keys: 0,
  buckets: 0,
  lifetimeTokens: 0,
  lifetimeRequests: 0,
  bucketTokens: 0,
});

function addTotals(t: CopyTotals, rows: KeyExport[]): void {
  for (const r of rows) {
    t.keys++;
    t.lifetimeTokens += r.key.totalTokens;
    t.lifetimeRequests += r.key.totalRequests;
    t.buckets += r.buckets.length;
    for (const b of r.buckets) t.bucketTokens += b.tokens;
  }
}

/** Sums over a whole database, read batch by batch. */
export async function totalsOf(storage: Storage): Promise<CopyTotals> {
  const t = emptyTotals();
  if (!storage.exportKeys)
    throw new CopyError(`${storage.kind} storage cannot be read for copying`);
  for await (const batch of storage.exportKeys(BATCH)) addTotals(t, batch);
  return t;
}

export interface CopyOptions {
  /** Copy into a target that already has keys, leaving those keys alone. */
  allowNonEmpty: boolean;
  dryRun: boolean;
  onProgress?: (keysDone: number) => void;
  /** Who runs the copy: recorded in the target's audit log. */
  actor?: AuditActor;
}

/**
 * Copies every key with its usage and totals from one database into another,
 * streaming in batches (each written and verified in its own transaction),
 * then compares counts and sums of the two. Journal checkpoints come along,
 * so an instance pointed at the new database never replays its journal twice.
 */
export async function copyDatabase(
  from: Storage,
  to: Storage,
  options: CopyOptions,
): Promise<CopyReport> {
  if (!from.exportKeys) throw new CopyError(`${from.kind} storage cannot be copied from`);
  if (!to.importKeys) throw new CopyError(`${to.kind} storage cannot be copied into`);
  const existing = await to.countKeys();
  if (existing > 0 && !options.allowNonEmpty) {
    throw new CopyError(
      `the target already holds ${existing} keys; nothing was copied (use --force to copy into it anyway, skipping keys it already has)`,
    );
  }
  if (options.dryRun) {
    const source = await totalsOf(from);
    return { source, target: await totalsOf(to), skipped: 0, checkpoints: 0 };
  }
  const source = emptyTotals();
  let skipped = 0;
  for await (const batch of from.exportKeys(BATCH)) {
    addTotals(source, batch);
    const r = await to.importKeys(batch, {
      skipExisting: options.allowNonEmpty,
      // Keys skipped as already present are not compared; the final count catches any gap.
      verify: (written) =>
        compareRows(options.allowNonEmpty ? fresh(batch, written) : batch, written),
    });
    skipped += r.skipped.length;
    options.onProgress?.(source.keys);
  }
  // The per-model history goes along into a target that had no keys (into
  // one that had, the history of keys it already held would add up twice).
  if (existing === 0 && from.exportModelUsage && to.importModelUsage) {
    for await (const rows of from.exportModelUsage(BATCH)) await to.importModelUsage(rows);
  }
  // The audit log goes along, when the target has none of its own yet.
  let auditEntries = 0;
  if (
    from.exportAudit &&
    to.importAudit &&
    (await to.listAudit({ limit: 1, offset: 0 })).total === 0
  ) {
    for await (const entries of from.exportAudit(BATCH)) {
      await to.importAudit(entries);
      auditEntries += entries.length;
    }
  }
  const checkpoints = (await from.listCheckpoints?.()) ?? [];
  for (const c of checkpoints)
    await to.applyUsage({
      instanceId: c.instanceId,
      firstSeq: c.lastSeq,
      lastSeq: c.lastSeq,
      keys: [],
    });
  const target = await totalsOf(to);
  const expectedKeys = source.keys - skipped + existing;
  if (target.keys !== expectedKeys || (existing === 0 && !sameTotals(source, target))) {
    throw new CopyError(
      `verification failed: source ${JSON.stringify(source)}, target ${JSON.stringify(target)}`,
    );
  }
  if (options.actor) {
    await to.appendAudit({
      at: Date.now(),
      actor: options.actor,
      action: "data.copy",
      keyId: null,
      keyPrefix: null,
      keyName: null,
      changes: { from: from.kind, keys: source.keys, skipped, audit_entries: auditEntries },
    });
  }
  return { source, target, skipped, checkpoints: checkpoints.length };
}

/** The rows of a batch that were written (those skipped as already present are not compared). */
function fresh(batch: KeyExport[], written: KeyExport[]): KeyExport[] {
  const ids = new Set(written.map((w) => w.key.id));
  return batch.filter((b) => ids.has(b.key.id));
}

function sameTotals(a: CopyTotals, b: CopyTotals): boolean {
  return (
    a.keys === b.keys &&
    a.buckets === b.buckets &&
    a.lifetimeTokens === b.lifetimeTokens &&
    a.lifetimeRequests === b.lifetimeRequests &&
    a.bucketTokens === b.bucketTokens
  );
}
