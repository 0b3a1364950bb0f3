/** A key as stored: never the secret, only its hash and a display prefix. */
export interface KeyRecord {
  id: string;
  keyHash: string;
  keyPrefix: string;
  name: string;
  tokenLimit: number;
  model: string | null;
  /** Epoch ms; null = never expires. */
  expiresAt: number | null;
  /** Requests in flight at once; null = no limit of its own (the gateway default applies). */
  maxConcurrent: number | null;
  /** Tokens per rolling 7 days; null = no weekly limit. */
  weeklyLimit: number | null;
  /** Model names or glob patterns the key may ask for; null = any model. */
  allowedModels: string[] | null;
  disabled: boolean;
  createdAt: number;
  updatedAt: number;
  lastUsedAt: number | null;
  totalTokens: number;
  totalRequests: number;
  /**
   * Epoch ms the key was revoked, null while it is not. A revoked key keeps
   * its name, limits, totals and usage; its hash is replaced by
   * `revokedHash(id)`, which no secret hashes to.
   */
  revokedAt: number | null;
}

/** What a revoked key holds in place of its hash: unique, and never a SHA-256 hex digest. */
export function revokedHash(id: string): string {
  return `revoked:${id}`;
}

export interface NewKey {
  id: string;
  keyHash: string;
  keyPrefix: string;
  name: string;
  tokenLimit: number;
  model: string | null;
  expiresAt: number | null;
  maxConcurrent: number | null;
  weeklyLimit: number | null;
  allowedModels: string[] | null;
  createdAt: number;
}

export interface KeyPatch {
  name?: string;
  tokenLimit?: number;
  model?: string | null;
  expiresAt?: number | null;
  maxConcurrent?: number | null;
  weeklyLimit?: number | null;
  allowedModels?: string[] | null;
  disabled?: boolean;
}

export interface KeyListQuery {
  limit: number;
  offset: number;
  /** Epoch ms used to tell active from expired. */
  now: number;
  /**
   * active: neither disabled nor expired; expired: expiry at or before `now`;
   * disabled: switched off; revoked: revoked keys only; all (default):
   * every key that is not revoked, and revoked ones too with `includeRevoked`.
   */
  status?: "active" | "expired" | "disabled" | "revoked" | "all";
  /** With status "all": revoked keys too (they are hidden by default). */
  includeRevoked?: boolean;
  /** Only keys whose model override is exactly this. */
  model?: string;
  /** Case-insensitive: the name contains it, or the display prefix starts with it. */
  search?: string;
}

/** One key's usage summed over a time range. */
export interface KeyTotal {
  keyId: string;
  tokens: number;
  requests: number;
}

/** Usage of one key in one 5-minute bucket. */
export interface BucketUsage {
  bucketStart: number;
  tokens: number;
  requests: number;
}

/**
 * Everything one flush writes, aggregated so that each (key, bucket) and each
 * key appears once. Written in one transaction together with the instance's
 * checkpoint, so a replayed journal never charges twice.
 */
export interface UsageBatch {
  instanceId: string;
  /**
   * The batch's journal sequence numbers run from `firstSeq` to `lastSeq`.
   * A backend applies a batch only if the instance's checkpoint is below
   * `lastSeq`, checked in the same transaction: a batch retried after a lost
   * answer is never applied twice.
   */
  firstSeq: number;
  lastSeq: number;
  keys: KeyUsage[];
  /** Per-model history of the same events, each (key, model, hour) once; absent = none. */
  models?: ModelUsage[];
}

/**
 * Usage of one key on one model in one hour: raw tokens by kind, the
 * weighted units charged for them, requests, and spend in micro-units of
 * the models file's currency.
 */
export interface ModelUsage {
  keyId: string;
  model: string;
  /** Start of the hour (epoch ms). */
  bucketStart: number;
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
  units: number;
  requests: number;
  spendMicros: number;
}

/** A key's usage of one model summed over a time range (`bucketStart` is then meaningless). */
export type ModelTotal = Omit<ModelUsage, "bucketStart">;

export interface KeyUsage {
  keyId: string;
  tokens: number;
  requests: number;
  lastUsedAt: number;
  buckets: BucketUsage[];
}

/** A whole key with its usage history, as moved between databases. */
export interface KeyExport {
  key: KeyRecord;
  buckets: BucketUsage[];
}

/** Who made a change: the CLI (system user@host), the admin API or a dashboard session (client address). */
export interface AuditActor {
  kind: "cli" | "api" | "dashboard";
  name: string;
}

/** One entry of the audit log as written; `changes` never holds a secret or hash. */
export interface NewAuditEntry {
  at: number;
  actor: AuditActor;
  action: string;
  keyId: string | null;
  keyPrefix: string | null;
  keyName: string | null;
  /** { field: { before, after } } for key changes; details for data operations. */
  changes: Record<string, unknown> | null;
}

export interface AuditEntry extends NewAuditEntry {
  id: number;
}

export interface AuditQuery {
  keyId?: string;
  /** Entries at or after this epoch ms. */
  since?: number;
  limit: number;
  offset: number;
}

export interface ImportOptions {
  /** Keys whose hash is already present are left as they are (and reported) instead of failing. */
  skipExisting: boolean;
  /**
   * Called inside the transaction with what was written, read back from the
   * database; any problem it returns rolls the whole import back.
   */
  verify?: (written: KeyExport[]) => string[];
  onProgress?: (done: number, total: number) => void;
}

export interface ImportResult {
  inserted: number;
  /** Ids of the keys skipped because their hash was already present. */
  skipped: string[];
}

export class ImportVerificationError extends Error {
  constructor(readonly problems: string[]) {
    super(`verification failed, nothing was written: ${problems.slice(0, 5).join("; ")}`);
  }
}

export interface Storage {
  readonly kind: "sqlite" | "postgres" | "file";
  migrate(): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;

  createKey(key: NewKey): Promise<KeyRecord>;
  getKeyByHash(keyHash: string): Promise<KeyRecord | null>;
  /**
   * The keys among `keyHashes` that exist, in no promised order: one query
   * (per chunk of a long list) for the key cache's refresh rounds.
   */
  getKeysByHash(keyHashes: readonly string[]): Promise<KeyRecord[]>;
  getKeyById(id: string): Promise<KeyRecord | null>;
  /** Keys whose id, display prefix or name equal `ref` (for the CLI). */
  findKeys(ref: string): Promise<KeyRecord[]>;
  listKeys(query: KeyListQuery): Promise<{ keys: KeyRecord[]; total: number }>;
  updateKey(id: string, patch: KeyPatch, now: number): Promise<KeyRecord | null>;
  /** A new secret for the same key; usage and totals stay. */
  rotateKey(id: string, keyHash: string, keyPrefix: string, now: number): Promise<KeyRecord | null>;
  /**
   * Revokes a key: its hash becomes `revokedHash(id)` so its secret stops
   * working, everything else stays. A key already revoked is returned as it is.
   */
  revokeKey(id: string, now: number): Promise<KeyRecord | null>;
  /**
   * Erases a key and its usage (purge), and blanks its name in the audit
   * log, in one transaction.
   */
  deleteKey(id: string): Promise<boolean>;
  countKeys(): Promise<number>;

  /** Buckets of one key that started at or after `since` (epoch ms), oldest first. */
  usageSince(keyId: string, since: number): Promise<BucketUsage[]>;
  /**
   * `usageSince` for many keys at once, in one query (per chunk of a long id
   * list): every id asked for has an entry, empty when it has no buckets
   * (or no longer exists).
   */
  usageSinceMany(keyIds: string[], since: number): Promise<Map<string, BucketUsage[]>>;
  /**
   * Usage per 5-minute bucket that started in [from, to), oldest first: one
   * key's, or summed over every key when `keyId` is null.
   */
  usageBetween(keyId: string | null, from: number, to: number): Promise<BucketUsage[]>;
  /**
   * Each key's usage in buckets that started in [from, to); only keys with
   * some usage appear, in no promised order. `keyIds` narrows it to those keys.
   */
  usageByKey(from: number, to: number, keyIds?: string[]): Promise<KeyTotal[]>;
  /**
   * Deletes at most `limit` buckets that started before `before` (history
   * retention) and returns how many it deleted; callers loop until it returns
   * less than `limit`, so no single statement holds locks for long.
   */
  pruneUsage(before: number, limit: number): Promise<number>;
  /**
   * Each key's usage per model in hours that started in [from, to), only
   * (key, model) pairs with some usage, ordered by key then model. `keyId`
   * narrows it to one key.
   */
  modelUsage(from: number, to: number, keyId?: string): Promise<ModelTotal[]>;
  /** As `pruneUsage`, for the hourly per-model history. */
  pruneModelUsage(before: number, limit: number): Promise<number>;
  applyUsage(batch: UsageBatch): Promise<void>;
  /** Highest sequence number of `instanceId` already applied (0 if none). */
  checkpoint(instanceId: string): Promise<number>;

  /** Appends one entry to the audit log. */
  appendAudit(entry: NewAuditEntry): Promise<void>;
  /** Audit entries newest first, with how many match. */
  listAudit(query: AuditQuery): Promise<{ entries: AuditEntry[]; total: number }>;
  /** Deletes at most `limit` audit entries older than `before` (retention); returns how many. */
  pruneAudit(before: number, limit: number): Promise<number>;
  /** Every audit entry, oldest first, in batches (backups and copies). */
  exportAudit?(batchSize: number): AsyncIterable<AuditEntry[]>;
  /** Writes entries as they are (ids kept); for restore and copy into an empty log. */
  importAudit?(entries: AuditEntry[]): Promise<void>;

  /**
   * Calls `onChange` with the id of every key changed or deleted by any
   * process sharing the database, where the backend can announce it.
   * Resolves to a function that stops watching.
   */
  watchKeyChanges?(onChange: (keyId: string) => void): Promise<() => Promise<void>>;

  /**
   * Writes whole keys with their usage in ONE transaction: all of them or,
   * on any error or verification problem, none. Databases only.
   */
  importKeys?(rows: KeyExport[], options: ImportOptions): Promise<ImportResult>;
  /** Every key with its usage, in batches, oldest first, without holding them all in memory. */
  exportKeys?(batchSize: number): AsyncIterable<KeyExport[]>;
  /** Every per-model hourly row, in batches, ordered by key, model and hour (backups and copies). */
  exportModelUsage?(batchSize: number): AsyncIterable<ModelUsage[]>;
  /** Adds per-model rows as they are; rows of keys the database does not hold are skipped. Databases only. */
  importModelUsage?(rows: ModelUsage[]): Promise<void>;
  /** Every instance's journal checkpoint (moved along with the data, so no journal replays twice). */
  listCheckpoints?(): Promise<Array<{ instanceId: string; lastSeq: number }>>;
}

/** Counts and sums of the data tables: what a backup's manifest promises and a restore checks. */
export interface DataCounts {
  keys: number;
  usageBuckets: number;
  lifetimeTokens: number;
  lifetimeRequests: number;
  bucketTokens: number;
  checkpoints: number;
}

/** What a database's migrations table says: rows applied and the newest one's `created_at`. */
export interface AppliedMigrations {
  applied: number;
  latestAt: number | null;
}
