import type { KeyRecord, Storage } from "../storage/types.ts";
import { hashKey } from "./secret.ts";

interface Entry {
  key: KeyRecord | null;
  at: number;
}

export interface KeyCacheOptions {
  /** How long a lookup is trusted; a revoked or changed key is obeyed within this. */
  ttlMs: number;
  /** Bound on remembered keys, known and unknown alike. */
  maxEntries: number;
}

/**
 * Keys by hash, so the request path does not pay a database round trip per
 * request. Unknown keys are remembered too (bounded), so a flood of made-up
 * keys costs one lookup per key per TTL, not one per request. Concurrent
 * lookups of the same key share one query.
 */
export class KeyCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<KeyRecord | null>>();

  constructor(
    private readonly storage: Storage,
    private readonly clock: () => number,
    private readonly options: KeyCacheOptions = { ttlMs: 1000, maxEntries: 100_000 },
  ) {}

  /** The key record for a presented secret, or null when no such key exists. */
  async lookup(secret: string): Promise<KeyRecord | null> {
    const hash = hashKey(secret);
    const hit = this.entries.get(hash);
    if (hit && this.clock() - hit.at < this.options.ttlMs) return hit.key;
    let p = this.inflight.get(hash);
    if (!p) {
      p = this.load(hash, hit).finally(() => this.inflight.delete(hash));
      this.inflight.set(hash, p);
    }
    return p;
  }

  /** Forget one key at once (after it was changed through this process). */
  invalidate(keyId: string): void {
    for (const [hash, e] of this.entries) if (e.key?.id === keyId) this.entries.delete(hash);
  }

  clear(): void {
    this.entries.clear();
  }

  private async load(hash: string, stale: Entry | undefined): Promise<KeyRecord | null> {
    let key: KeyRecord | null;
    try {
      key = await this.storage.getKeyByHash(hash);
    } catch (err) {
      // The database is out: a key we knew keeps working from memory.
      if (stale?.key) return stale.key;
      throw err;
    }
    this.entries.delete(hash);
    if (this.entries.size >= this.options.maxEntries) {
      // Maps iterate in insertion order: the first entry is the oldest.
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(hash, { key, at: this.clock() });
    return key;
  }
}
