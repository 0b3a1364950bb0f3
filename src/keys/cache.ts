import type { StorageHealth } from "../storage/health.ts";
import type { KeyRecord, Storage } from "../storage/types.ts";
import { TimeoutError, withTimeout } from "../util/timeout.ts";
import { displayPrefix, hashKey } from "./secret.ts";

interface Entry {
  key: KeyRecord;
  /** When the query that read the record was sent: the record is at least that fresh. */
  at: number;
}

export interface KeyCacheOptions {
  /** How long a lookup is trusted; a revoked or changed key is obeyed within this. */
  ttlMs: number;
  /** Bound on remembered known keys; the least recently used goes first. */
  maxEntries: number;
  /**
   * Bound on remembered unknown key strings. Kept apart from known keys, so a
   * flood of made-up keys can never push a real key out of memory.
   */
  maxMisses: number;
  /**
   * How long a request waits for a key's refresh before using what is
   * remembered (a busy pool must not stall requests of known keys).
   */
  refreshWaitMs: number;
  /** While the database is out, keys never seen: refused (503) or let through unverified. */
  unknownDuringOutage: "reject" | "allow";
}

/** The background rounds that keep the keys in use fresh (`KeyCache.start`). */
export interface KeyRefreshOptions {
  /** Keys looked up within this long are re-read by every round; others on their next use. */
  activeMs: number;
  /** How often a round runs: under the TTL, so that keys in use never reach it. */
  everyMs: number;
  /**
   * A round that has not answered within this long is given up on, so a
   * query that never answers does not hold back every round after it.
   */
  timeoutMs: number;
}

export const defaultKeyCacheOptions: KeyCacheOptions = {
  ttlMs: 1000,
  maxEntries: 100_000,
  maxMisses: 10_000,
  refreshWaitMs: 250,
  unknownDuringOutage: "reject",
};

/** Key ids of keys let through unverified during an outage; resolved by hash when the database is back. */
export const UNVERIFIED_PREFIX = "unverified:";

export class StorageUnavailableError extends Error {}

/**
 * Keys by hash, so the request path does not pay a database round trip per
 * request. Unknown keys are remembered too, in their own bounded map, so a
 * flood of made-up keys costs one lookup per key per TTL, not one per
 * request, and never evicts a known key. Concurrent
 * lookups of the same key share one query. While the database is out, known
 * keys keep working from memory.
 */
export class KeyCache {
  /** Known keys, least recently used first (Maps iterate in insertion order). */
  private readonly entries = new Map<string, Entry>();
  /** Unknown key hashes and when they were looked up, oldest first. */
  private readonly misses = new Map<string, number>();
  private readonly inflight = new Map<string, Promise<KeyRecord | null>>();
  /** Hashes of known keys looked up lately, with when: what a round re-reads. */
  private readonly active = new Map<string, number>();
  private refresh: KeyRefreshOptions | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private round: Promise<void> | undefined;
  /** Each record read, with the flush count as its query was sent (see `flushMarkOf`). */
  private readonly marks = new WeakMap<KeyRecord, number>();
  /** Counts `invalidate` calls: a read under way across one may hold the record from before it. */
  private invalidations = 0;
  /**
   * Bumped when the database recovers and when the rounds stop: a round
   * begun before no longer reports its failure (a query sent before an
   * outage may fail only after the recovery).
   */
  private epoch = 0;

  constructor(
    private readonly storage: Storage,
    private readonly clock: () => number,
    private readonly options: KeyCacheOptions = defaultKeyCacheOptions,
    private readonly health?: StorageHealth,
    private readonly observe: (result: "hit" | "miss" | "stale") => void = () => {},
    /** The ledger's flush count: what a record read now already includes of this instance's usage. */
    private readonly flushMark: () => number = () => 0,
  ) {
    health?.onRecovered(() => {
      this.epoch++;
    });
  }

  /**
   * The key record for a presented secret, or null when no such key exists.
   * `onUnknown` is called first when this process holds no record of the key
   * (fresh or not); it may throw to refuse the lookup (the same test as
   * `knows`, without hashing the secret twice).
   */
  async lookup(secret: string, onUnknown?: () => void): Promise<KeyRecord | null> {
    const hash = hashKey(secret);
    const hit = this.entries.get(hash);
    const now = this.clock();
    if (!hit) onUnknown?.();
    if (hit) {
      // Most recently used goes last.
      this.entries.delete(hash);
      this.entries.set(hash, hit);
      if (this.refresh) this.active.set(hash, now);
    }
    if (hit && now - hit.at < this.options.ttlMs) {
      this.observe("hit");
      return hit.key;
    }
    const missedAt = hit ? undefined : this.misses.get(hash);
    if (missedAt !== undefined && now - missedAt < this.options.ttlMs) {
      this.observe("hit");
      return null;
    }
    if (this.health?.degraded) {
      this.observe("stale");
      return hit ? hit.key : this.unknownDuringOutage(hash, secret);
    }
    this.observe("miss");
    let p = this.inflight.get(hash);
    if (!p) {
      p = this.load(hash).finally(() => this.inflight.delete(hash));
      this.inflight.set(hash, p);
    }
    try {
      if (!hit) return await p;
      // Known key: wait a little for fresh data, then go on with what we know.
      return await withTimeout(p, this.options.refreshWaitMs);
    } catch (err) {
      if (err instanceof TimeoutError && hit) {
        this.observe("stale");
        return hit.key;
      }
      this.health?.reportFailure(err);
      this.observe("stale");
      return hit ? hit.key : this.unknownDuringOutage(hash, secret);
    }
  }

  /**
   * Starts the background rounds: every `everyMs`, the keys looked up within
   * `activeMs` are re-read in one query, so a gateway serving many keys asks
   * the database a few times a second rather than once per key per TTL, and
   * their requests do not wait for a refresh. The TTL still bounds how old a
   * record may be: a key the rounds have not refreshed in time (the database
   * is slow, or the key was not in use) is looked up by its request as before.
   */
  start(options: Partial<KeyRefreshOptions> = {}): void {
    const everyMs = options.everyMs ?? Math.max(1, Math.floor(this.options.ttlMs / 2));
    this.refresh = {
      // Kept short: a key used now and then is looked up by its request, as
      // before, rather than re-read twice a second for long after its use.
      activeMs: 2 * this.options.ttlMs,
      everyMs,
      timeoutMs: Math.max(this.options.refreshWaitMs, 4 * everyMs),
      ...options,
    };
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => void this.refreshActive(), everyMs);
    this.timer.unref?.();
  }

  /** Stops the rounds; a round under way is not waited for (the database may hang). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.refresh = undefined;
    this.active.clear();
    this.epoch++;
  }

  /**
   * One round: the keys in use re-read at once. A call while a round runs
   * joins it, unless that one has not answered within `timeoutMs`. Never
   * rejects: a failure goes to the health monitor, and the requests look
   * their keys up themselves once the TTL has passed.
   */
  refreshActive(): Promise<void> {
    if (this.round) return this.round;
    const opts = this.refresh;
    if (!opts) return Promise.resolve();
    const epoch = this.epoch;
    const round: Promise<void> = withTimeout(this.runRound(opts), opts.timeoutMs)
      .catch((err) => {
        // Not once stopped (the storage may be closing under it), nor once
        // the database has recovered since the round began.
        if (!(err instanceof TimeoutError) && this.epoch === epoch) this.health?.reportFailure(err);
      })
      .finally(() => {
        if (this.round === round) this.round = undefined;
      });
    this.round = round;
    return round;
  }

  private async runRound(opts: KeyRefreshOptions): Promise<void> {
    if (this.health?.degraded) return;
    const startedAt = this.clock();
    const hashes: string[] = [];
    for (const [hash, usedAt] of this.active) {
      if (startedAt - usedAt >= opts.activeMs || !this.entries.has(hash)) this.active.delete(hash);
      else hashes.push(hash);
    }
    if (hashes.length === 0) return;
    const mark = this.flushMark();
    const found = new Map<string, KeyRecord>();
    for (const key of await this.storage.getKeysByHash(hashes)) found.set(key.keyHash, key);
    for (const hash of hashes) {
      const e = this.entries.get(hash);
      // Gone (invalidated, evicted) or read since the query was sent: left as it is.
      if (!e || e.at >= startedAt) continue;
      const key = found.get(hash);
      if (key) {
        e.key = key;
        e.at = startedAt;
        this.marks.set(key, mark);
      } else {
        // Deleted, revoked or rotated elsewhere: unknown from now on, as a lookup would find.
        this.entries.delete(hash);
        this.active.delete(hash);
        remember(this.misses, hash, startedAt, this.options.maxMisses);
      }
    }
  }

  /**
   * The ledger's flush count when `record` was read: its totals include
   * this instance's flushes up to that number, and none after it (or
   * undefined for a record this cache did not read).
   */
  flushMarkOf(record: KeyRecord): number | undefined {
    return this.marks.get(record);
  }

  /** Whether this process holds a record of the key (fresh or not), without asking the database. */
  knows(secret: string): boolean {
    return this.entries.has(hashKey(secret));
  }

  /** Forget one key at once (after it was changed through this process). */
  invalidate(keyId: string): void {
    this.invalidations++;
    for (const [hash, e] of this.entries) if (e.key?.id === keyId) this.entries.delete(hash);
  }

  /** Keys known to exist, for readiness: with none, nothing can be served during an outage. */
  get knownKeys(): number {
    return this.entries.size;
  }

  /** Unknown key strings remembered. */
  get missingKeys(): number {
    return this.misses.size;
  }

  private unknownDuringOutage(hash: string, secret: string): KeyRecord | null {
    // Looked up before and not found: still unknown, however long ago.
    if (this.misses.has(hash)) return null;
    if (this.options.unknownDuringOutage === "reject") {
      throw new StorageUnavailableError(
        "key storage is unavailable and this key is not known here",
      );
    }
    const now = this.clock();
    // Let through, charged to a placeholder that the ledger resolves by hash
    // once the database is back (and drops if no such key exists).
    return {
      id: `${UNVERIFIED_PREFIX}${hash}`,
      keyHash: hash,
      keyPrefix: displayPrefix(secret),
      name: "(unverified during a database outage)",
      tokenLimit: Number.MAX_SAFE_INTEGER,
      model: null,
      expiresAt: null,
      maxConcurrent: null,
      weeklyLimit: null,
      allowedModels: null,
      disabled: false,
      revokedAt: null,
      createdAt: now,
      updatedAt: now,
      lastUsedAt: null,
      totalTokens: 0,
      totalRequests: 0,
    };
  }

  private async load(hash: string): Promise<KeyRecord | null> {
    const at = this.clock();
    const mark = this.flushMark();
    const invalidations = this.invalidations;
    const key = await this.storage.getKeyByHash(hash);
    if (key) this.marks.set(key, mark);
    // A key changed (and so invalidated) while this read was under way: the
    // answer may be from before the change, so it is not remembered.
    if (this.invalidations !== invalidations) return key;
    if (key) {
      this.misses.delete(hash);
      this.entries.delete(hash);
      remember(this.entries, hash, { key, at }, this.options.maxEntries);
      if (this.refresh) this.active.set(hash, at);
    } else {
      // A key that no longer exists (deleted elsewhere) is forgotten.
      this.entries.delete(hash);
      this.misses.delete(hash);
      remember(this.misses, hash, at, this.options.maxMisses);
    }
    return key;
  }
}

/** Adds as most recent; past `max`, the least recently used entries go first. */
function remember<V>(map: Map<string, V>, hash: string, value: V, max: number): void {
  while (map.size >= max) {
    const oldest = map.keys().next().value;
    if (oldest === undefined) break;
    map.delete(oldest);
  }
  map.set(hash, value);
}
