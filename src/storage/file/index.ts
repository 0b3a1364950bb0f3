import { matchesKeyQuery } from "../key-filter.ts";
import {
  type AuditEntry,
  type AuditQuery,
  type BucketUsage,
  type KeyExport,
  type KeyListQuery,
  type KeyPatch,
  type KeyRecord,
  type KeyTotal,
  type ModelTotal,
  type ModelUsage,
  type NewAuditEntry,
  type NewKey,
  revokedHash,
  type Storage,
  type UsageBatch,
} from "../types.ts";
import { fromFileAudit, queryAudit, toFileAudit } from "./audit.ts";
import { KeyDocument } from "./document.ts";
import type { LockOptions } from "./lock.ts";
import { chargeModels, fileRowAmounts, modelTotals, pruneModels } from "./model-usage.ts";
import { expiryToFile, iso, newEntry, type Snapshot } from "./records.ts";
import type { RawFile } from "./schema.ts";
import { bucketsSince, chargeEntry, pruneEntry } from "./usage.ts";

export { KeyFileError } from "./schema.ts";

/**
 * The old gateway's `apikeys.json`, read and written in its own format, so an
 * existing deployment moves to Tollgate without a migration and can still
 * roll back. Meant for one host: the server and the CLI (or two servers) may
 * share the file, serialised by a lock file; several hosts want PostgreSQL.
 */
export function openFileStorage(path: string, lock?: LockOptions): Storage {
  return new FileStorage(new KeyDocument(path, lock));
}

class FileStorage implements Storage {
  readonly kind = "file" as const;

  constructor(private readonly doc: KeyDocument) {}

  /** Creates the file if missing, else validates it; never rewrites an existing file. */
  async migrate(): Promise<void> {
    if (!(await this.doc.create())) this.doc.read();
  }

  async ping(): Promise<void> {
    this.doc.read();
  }

  async close(): Promise<void> {
    await this.doc.settle();
  }

  async createKey(key: NewKey): Promise<KeyRecord> {
    const { result, snapshot } = await this.doc.mutate((draft, current) => {
      if (current.byHash.has(key.keyHash)) throw new Error("a key with this hash already exists");
      if (current.byId.has(key.id)) throw new Error(`a key with id ${key.id} already exists`);
      draft.keys.push(newEntry(key));
      return { result: draft.keys.length - 1, write: true };
    });
    const record = snapshot.records[result];
    if (!record) throw new Error("created key missing from the file");
    return { ...record };
  }

  async getKeyByHash(keyHash: string): Promise<KeyRecord | null> {
    const s = this.doc.read();
    return copy(s.records[s.byHash.get(keyHash) ?? -1]);
  }

  async getKeysByHash(keyHashes: readonly string[]): Promise<KeyRecord[]> {
    const s = this.doc.read();
    const out: KeyRecord[] = [];
    for (const hash of new Set(keyHashes)) {
      const record = copy(s.records[s.byHash.get(hash) ?? -1]);
      if (record) out.push(record);
    }
    return out;
  }

  async getKeyById(id: string): Promise<KeyRecord | null> {
    const s = this.doc.read();
    return copy(s.records[s.byId.get(id) ?? -1]);
  }

  async findKeys(ref: string): Promise<KeyRecord[]> {
    return this.doc
      .read()
      .records.filter((k) => k.id === ref || k.keyPrefix === ref || k.name === ref)
      .map((k) => ({ ...k }));
  }

  async listKeys(query: KeyListQuery): Promise<{ keys: KeyRecord[]; total: number }> {
    const matching = this.doc.read().records.filter((k) => matchesKeyQuery(k, query));
    // Newest first, as the database backends order them.
    matching.sort((a, b) => b.createdAt - a.createdAt || compareIds(a.id, b.id));
    const keys = matching.slice(query.offset, query.offset + query.limit).map((k) => ({ ...k }));
    return { keys, total: matching.length };
  }

  async updateKey(id: string, patch: KeyPatch, now: number): Promise<KeyRecord | null> {
    return this.changeKey(id, (entry) => {
      if (patch.name !== undefined) entry.name = patch.name;
      if (patch.tokenLimit !== undefined) entry.token_limit_per_5h = patch.tokenLimit;
      if (patch.model === null) delete entry.model;
      else if (patch.model !== undefined) entry.model = patch.model;
      if (patch.expiresAt !== undefined) entry.expiry_date = expiryToFile(patch.expiresAt);
      if (patch.maxConcurrent === null) delete entry.max_concurrent;
      else if (patch.maxConcurrent !== undefined) entry.max_concurrent = patch.maxConcurrent;
      if (patch.weeklyLimit === null) delete entry.token_limit_per_week;
      else if (patch.weeklyLimit !== undefined) entry.token_limit_per_week = patch.weeklyLimit;
      if (patch.allowedModels === null) delete entry.allowed_models;
      else if (patch.allowedModels !== undefined) entry.allowed_models = patch.allowedModels;
      if (patch.disabled !== undefined) entry.disabled = patch.disabled;
      entry.updated_at = iso(now);
    });
  }

  async rotateKey(
    id: string,
    keyHash: string,
    keyPrefix: string,
    now: number,
  ): Promise<KeyRecord | null> {
    return this.changeKey(
      id,
      (entry) => {
        // A legacy id is derived from the old hash: pin it before the hash changes.
        entry.id = id;
        delete entry.key;
        entry.key_sha256 = keyHash;
        entry.key_prefix = keyPrefix;
        entry.updated_at = iso(now);
      },
      (current) => {
        const other = current.byHash.get(keyHash);
        if (other !== undefined && current.records[other]?.id !== id) {
          throw new Error("a key with this hash already exists");
        }
      },
    );
  }

  async revokeKey(id: string, now: number): Promise<KeyRecord | null> {
    const s = this.doc.read();
    const k = s.records[s.byId.get(id) ?? -1];
    if (!k || k.revokedAt !== null) return copy(k);
    return this.changeKey(id, (entry) => {
      // A legacy id is derived from the hash: pin it before the hash goes.
      entry.id = id;
      // A legacy entry's plaintext key goes too: the old gateway must not accept it either.
      delete entry.key;
      entry.key_sha256 = revokedHash(id);
      entry.revoked_at = iso(now);
      entry.updated_at = iso(now);
    });
  }

  async deleteKey(id: string): Promise<boolean> {
    const { result } = await this.doc.mutate((draft, current) => {
      const i = current.byId.get(id);
      if (i === undefined) return { result: false, write: false };
      draft.keys.splice(i, 1);
      if (draft.tollgate_audit) {
        draft.tollgate_audit = draft.tollgate_audit.map((e) =>
          e.key_id === id ? { ...e, key_name: null, changes: withoutName(e.changes) } : e,
        );
      }
      return { result: true, write: true };
    });
    return result;
  }

  async appendAudit(entry: NewAuditEntry): Promise<void> {
    await this.doc.mutate((draft) => {
      const log = draft.tollgate_audit ?? [];
      const id = log.reduce((max, e) => Math.max(max, e.id), 0) + 1;
      draft.tollgate_audit = [...log, toFileAudit(entry, id)];
      return { result: undefined, write: true };
    });
  }

  async listAudit(query: AuditQuery): Promise<{ entries: AuditEntry[]; total: number }> {
    return queryAudit(this.doc.read().parsed.tollgate_audit ?? [], query);
  }

  async pruneAudit(before: number, limit: number): Promise<number> {
    const { result } = await this.doc.mutate((draft) => {
      const log = draft.tollgate_audit ?? [];
      const old = new Set(
        log
          .filter((e) => e.at < before)
          .sort((a, b) => a.at - b.at)
          .slice(0, limit)
          .map((e) => e.id),
      );
      if (old.size === 0) return { result: 0, write: false };
      draft.tollgate_audit = log.filter((e) => !old.has(e.id));
      return { result: old.size, write: true };
    });
    return result;
  }

  async *exportAudit(batchSize: number): AsyncIterable<AuditEntry[]> {
    const log = [...(this.doc.read().parsed.tollgate_audit ?? [])].sort((a, b) => a.id - b.id);
    for (let i = 0; i < log.length; i += batchSize)
      yield log.slice(i, i + batchSize).map(fromFileAudit);
  }

  async importAudit(entries: AuditEntry[]): Promise<void> {
    await this.doc.mutate((draft) => {
      draft.tollgate_audit = [
        ...(draft.tollgate_audit ?? []),
        ...entries.map((e) => toFileAudit(e, e.id)),
      ];
      return { result: undefined, write: entries.length > 0 };
    });
  }

  async countKeys(): Promise<number> {
    return this.doc.read().records.length;
  }

  async usageSince(keyId: string, since: number): Promise<BucketUsage[]> {
    const s = this.doc.read();
    const entry = s.parsed.keys[s.byId.get(keyId) ?? -1];
    return entry ? bucketsSince(entry, since) : [];
  }

  async usageSinceMany(keyIds: string[], since: number): Promise<Map<string, BucketUsage[]>> {
    const s = this.doc.read();
    const out = new Map<string, BucketUsage[]>();
    for (const id of keyIds) {
      const entry = s.parsed.keys[s.byId.get(id) ?? -1];
      out.set(id, entry ? bucketsSince(entry, since) : []);
    }
    return out;
  }

  // The file keeps no history beyond the quota window (see usage.ts): these
  // answer from what it has.

  async usageBetween(keyId: string | null, from: number, to: number): Promise<BucketUsage[]> {
    const s = this.doc.read();
    const entries = keyId === null ? s.parsed.keys : [s.parsed.keys[s.byId.get(keyId) ?? -1]];
    const sums = new Map<number, BucketUsage>();
    for (const entry of entries) {
      if (!entry) continue;
      for (const b of bucketsSince(entry, from)) {
        if (b.bucketStart >= to) continue;
        const sum = sums.get(b.bucketStart);
        if (sum) {
          sum.tokens += b.tokens;
          sum.requests += b.requests;
        } else sums.set(b.bucketStart, { ...b });
      }
    }
    return [...sums.values()].sort((a, b) => a.bucketStart - b.bucketStart);
  }

  async usageByKey(from: number, to: number, keyIds?: string[]): Promise<KeyTotal[]> {
    const s = this.doc.read();
    const wanted = keyIds && new Set(keyIds);
    const totals: KeyTotal[] = [];
    s.records.forEach((record, i) => {
      const entry = s.parsed.keys[i];
      if (!entry || (wanted && !wanted.has(record.id))) return;
      const buckets = bucketsSince(entry, from).filter((b) => b.bucketStart < to);
      if (buckets.length === 0) return;
      totals.push({
        keyId: record.id,
        tokens: buckets.reduce((sum, b) => sum + b.tokens, 0),
        requests: buckets.reduce((sum, b) => sum + b.requests, 0),
      });
    });
    return totals;
  }

  async pruneUsage(before: number, limit: number): Promise<number> {
    const { result } = await this.doc.mutate((draft) => {
      let removed = 0;
      for (const entry of draft.keys) {
        if (removed >= limit) break;
        removed += pruneEntry(entry, before, limit - removed);
      }
      // Nothing old enough: the file is not rewritten.
      return { result: removed, write: removed > 0 };
    });
    return result;
  }

  async modelUsage(from: number, to: number, keyId?: string): Promise<ModelTotal[]> {
    const s = this.doc.read();
    const out: ModelTotal[] = [];
    const ids = s.records.map((r, i) => [r.id, i] as const).sort(([a], [b]) => compareIds(a, b));
    for (const [id, i] of ids) {
      if (keyId !== undefined && id !== keyId) continue;
      out.push(...modelTotals(id, s.parsed.keys[i]?.tollgate_model_usage ?? [], from, to));
    }
    return out;
  }

  async pruneModelUsage(before: number, limit: number): Promise<number> {
    const { result } = await this.doc.mutate((draft) => {
      let removed = 0;
      for (const entry of draft.keys) {
        if (removed >= limit) break;
        removed += pruneModels(entry, before, limit - removed);
      }
      return { result: removed, write: removed > 0 };
    });
    return result;
  }

  /** Totals, buckets, windows and the checkpoint: one write, so a replay never charges twice. */
  async applyUsage(batch: UsageBatch): Promise<void> {
    await this.doc.mutate((draft, current) => {
      // Already applied (a retry after a lost answer): nothing to do.
      if ((current.parsed.tollgate_checkpoints?.[batch.instanceId] ?? 0) >= batch.lastSeq) {
        return { result: undefined, write: false };
      }
      let write = false;
      const modelsDone = new Set<string>();
      for (const usage of batch.keys) {
        const entry = draft.keys[current.byId.get(usage.keyId) ?? -1];
        // A key deleted while its usage was pending: nothing left to charge.
        if (!entry) continue;
        chargeEntry(entry, usage);
        // Each key's model rows once, even if the key appears twice in `keys`.
        if (!modelsDone.has(usage.keyId)) {
          modelsDone.add(usage.keyId);
          chargeModels(
            entry,
            (batch.models ?? []).filter((m) => m.keyId === usage.keyId),
          );
        }
        write = true;
      }
      const checkpoints = { ...current.parsed.tollgate_checkpoints };
      if ((checkpoints[batch.instanceId] ?? 0) < batch.lastSeq) {
        checkpoints[batch.instanceId] = batch.lastSeq;
        draft.tollgate_checkpoints = checkpoints;
        write = true;
      }
      return { result: undefined, write };
    });
  }

  /** Every key with its usage, oldest first, from one version of the file. */
  async *exportKeys(batchSize: number): AsyncIterable<KeyExport[]> {
    const s = this.doc.read();
    const rows = s.records
      .map((key, i) => ({ key: { ...key }, buckets: bucketsSince(s.parsed.keys[i] ?? {}, 0) }))
      .sort((a, b) => a.key.createdAt - b.key.createdAt || compareIds(a.key.id, b.key.id));
    for (let i = 0; i < rows.length; i += batchSize) yield rows.slice(i, i + batchSize);
  }

  /** Every key's per-model hourly rows, from one version of the file (for `db copy`). */
  async *exportModelUsage(batchSize: number): AsyncIterable<ModelUsage[]> {
    const s = this.doc.read();
    const rows: ModelUsage[] = s.records.flatMap((key, i) =>
      (s.parsed.keys[i]?.tollgate_model_usage ?? []).map((r) => ({
        keyId: key.id,
        model: r.model,
        bucketStart: r.bucket_start,
        ...fileRowAmounts(r),
      })),
    );
    for (let i = 0; i < rows.length; i += batchSize) yield rows.slice(i, i + batchSize);
  }

  async checkpoint(instanceId: string): Promise<number> {
    return this.doc.read().parsed.tollgate_checkpoints?.[instanceId] ?? 0;
  }

  /** Changes one key's entry; null when there is no such key. */
  private async changeKey(
    id: string,
    edit: (entry: RawFile["keys"][number]) => void,
    check?: (current: Snapshot) => void,
  ): Promise<KeyRecord | null> {
    const { result, snapshot } = await this.doc.mutate((draft, current) => {
      const i = current.byId.get(id);
      const entry = draft.keys[i ?? -1];
      if (i === undefined || !entry) return { result: -1, write: false };
      check?.(current);
      edit(entry);
      return { result: i, write: true };
    });
    return copy(snapshot.records[result]);
  }
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function copy(k: KeyRecord | undefined): KeyRecord | null {
  return k ? { ...k } : null;
}

function withoutName<T extends Record<string, unknown> | null | undefined>(changes: T): T {
  if (!changes || !("name" in changes)) return changes;
  const { name: _, ...rest } = changes;
  return rest as T;
}
