import type { UsageLedger } from "../accounting/ledger.ts";
import type { StorageHealth } from "../storage/health.ts";
import type { KeyUsage, Storage } from "../storage/types.ts";
import { type Bucket, WINDOW_MS, windowFloor } from "./window.ts";

interface Entry {
  /** The database's buckets for the key, as of the last load. */
  stored: Bucket[];
  loadedAt: number;
  /** Our own flushes committed since the load started, tagged with their flush number. */
  flushedSince: Array<{ flushNo: number; bucketStart: number; tokens: number }>;
  loading: Promise<void> | undefined;
  touchedAt: number;
}

/**
 * A key's window usage as admission sees it: the database's buckets (re-read
 * at most every `refreshMs`, which bounds how stale other writers' usage can
 * be) plus this instance's usage that the database has or may not have yet.
 * When in doubt it counts a batch twice rather than not at all: admission
 * errs on the side of the quota.
 */
export class UsageView {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly storage: Storage,
    private readonly ledger: UsageLedger,
    private readonly clock: () => number,
    private readonly refreshMs: number,
    private readonly health?: StorageHealth,
    /** How long a request waits for a refresh before using the buckets it has. */
    private readonly refreshWaitMs = 250,
  ) {}

  /** All buckets that count for `keyId` now (may contain the same start twice; callers sum). */
  async buckets(keyId: string): Promise<Bucket[]> {
    const now = this.clock();
    let e = this.entries.get(keyId);
    if (!e) {
      e = { stored: [], loadedAt: -Infinity, flushedSince: [], loading: undefined, touchedAt: now };
      this.entries.set(keyId, e);
    }
    e.touchedAt = now;
    // While the database is out, what this instance knows is all there is:
    // the last buckets read plus everything charged here since.
    if (now - e.loadedAt >= this.refreshMs && !this.health?.degraded) await this.refresh(keyId, e);
    const out: Bucket[] = [...e.stored];
    for (const f of e.flushedSince) out.push(f);
    const pending = this.ledger.pendingBuckets(keyId);
    if (pending) for (const [bucketStart, tokens] of pending) out.push({ bucketStart, tokens });
    return out;
  }

  /** Ledger hook: our own committed usage, until a fresh load includes it for certain. */
  onFlushed(keys: KeyUsage[], flushNo: number): void {
    for (const k of keys) {
      const e = this.entries.get(k.keyId);
      if (!e) continue;
      for (const b of k.buckets)
        e.flushedSince.push({ flushNo, bucketStart: b.bucketStart, tokens: b.tokens });
    }
  }

  /** Drops a key (deleted or changed) so its next use reloads it. */
  forget(keyId: string): void {
    this.entries.delete(keyId);
  }

  /** Forgets keys unused for a window's length, to bound memory. */
  sweep(): void {
    const cutoff = this.clock() - WINDOW_MS;
    for (const [id, e] of this.entries)
      if (e.touchedAt < cutoff && !e.loading) this.entries.delete(id);
  }

  /**
   * Waits for fresh buckets; but when it already has some, not for long: a
   * slow pool must not stall admission. If the database cannot answer, what
   * this instance knows is used (and the health monitor takes over).
   */
  private async refresh(keyId: string, e: Entry): Promise<void> {
    const loading = this.load(keyId, e).catch(() => {});
    if (e.loadedAt === -Infinity) return loading;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      loading,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.refreshWaitMs);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  private load(keyId: string, e: Entry): Promise<void> {
    e.loading ??= (async () => {
      // Flushes committed before the query starts are surely in its result.
      const seenFlush = this.ledger.flushNo;
      const startedAt = this.clock();
      try {
        const rows = await this.storage.usageSince(keyId, windowFloor(startedAt));
        e.stored = rows.map((r) => ({ bucketStart: r.bucketStart, tokens: r.tokens }));
        e.flushedSince = e.flushedSince.filter((f) => f.flushNo > seenFlush);
        e.loadedAt = startedAt;
      } catch (err) {
        this.health?.reportFailure(err);
        throw err;
      } finally {
        e.loading = undefined;
      }
    })();
    return e.loading;
  }
}
