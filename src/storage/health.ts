import type { Logger } from "../log.ts";
import { SingleFlight } from "../util/single-flight.ts";
import { withTimeout } from "../util/timeout.ts";
import { backoffMs } from "./retry.ts";
import type { Storage } from "./types.ts";

export interface StorageHealthOptions {
  /** How often a healthy database is pinged, to notice an outage before a request does. */
  probeMs: number;
  /** First wait between reconnection attempts while degraded; doubles up to `maxBackoffMs`. */
  backoffMs: number;
  maxBackoffMs: number;
  /** A ping slower than this counts as a failure. */
  pingTimeoutMs: number;
}

export interface StorageHealthState {
  reachable: boolean;
  /** Round trip of the last successful ping, ms. */
  latencyMs: number | null;
  lastError: string | null;
  /** Epoch ms since when the database has been unreachable. */
  degradedSince: number | null;
  lastCheckAt: number | null;
}

/**
 * Whether the database answers. Any part of the gateway that sees a storage
 * error reports it here; from then on the gateway serves from memory
 * (degraded) and this monitor keeps trying to reconnect, with backoff and
 * jitter, for as long as it takes. When the database answers again, the
 * `onRecovered` callbacks run (the ledger replays its backlog).
 */
export class StorageHealth {
  private state: StorageHealthState = {
    reachable: true,
    latencyMs: null,
    lastError: null,
    degradedSince: null,
    lastCheckAt: null,
  };
  private timer: ReturnType<typeof setTimeout> | undefined;
  private attempt = 0;
  private readonly checks = new SingleFlight<void>();
  private stopped = false;
  private readonly recovered: Array<() => void> = [];

  constructor(
    private readonly storage: Storage,
    private readonly log: Logger,
    private readonly options: StorageHealthOptions,
    private readonly clock: () => number = Date.now,
  ) {}

  get degraded(): boolean {
    return !this.state.reachable;
  }

  snapshot(): StorageHealthState {
    return { ...this.state };
  }

  onRecovered(fn: () => void): void {
    this.recovered.push(fn);
  }

  start(): void {
    this.schedule(this.options.probeMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** A storage operation failed: serve from memory and start reconnecting. */
  reportFailure(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.state.lastError = message;
    if (!this.state.reachable) return;
    this.state.reachable = false;
    this.state.degradedSince = this.clock();
    // `attempt` is only reset by a real success (`reportSuccess`): a database
    // that answers pings but refuses writes (disk full, permissions) is
    // retried with growing waits, not in a tight loop.
    this.attempt++;
    this.log.warn(
      { err: message },
      "database unreachable: serving known keys from memory, usage kept in the journal",
    );
    this.schedule(this.attempt <= 1 ? 0 : this.backoff());
  }

  /** A storage write went through: the database is fully back. */
  reportSuccess(): void {
    this.attempt = 0;
  }

  private backoff(): number {
    return Math.max(
      50,
      backoffMs(this.attempt, { baseMs: this.options.backoffMs, maxMs: this.options.maxBackoffMs }),
    );
  }

  /** Pings now (or joins a ping under way) and updates the state; for readiness probes. */
  check(): Promise<void> {
    return this.checks.run(() => this.ping());
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref?.();
  }

  private async tick(): Promise<void> {
    await this.check();
    if (this.state.reachable) {
      this.schedule(this.options.probeMs);
    } else {
      this.attempt++;
      this.schedule(this.backoff());
    }
  }

  private async ping(): Promise<void> {
    const started = performance.now();
    try {
      await withTimeout(this.storage.ping(), this.options.pingTimeoutMs);
    } catch (err) {
      this.state.lastCheckAt = this.clock();
      this.reportFailure(err);
      return;
    }
    this.state.lastCheckAt = this.clock();
    this.state.latencyMs = Math.round((performance.now() - started) * 100) / 100;
    if (!this.state.reachable) {
      const downMs = this.clock() - (this.state.degradedSince ?? this.clock());
      this.state.reachable = true;
      this.state.degradedSince = null;
      this.state.lastError = null;
      this.log.info({ downMs }, "database reachable again");
      for (const fn of this.recovered) fn();
    }
  }
}
