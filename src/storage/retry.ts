export interface RetryOptions {
  attempts: number;
  /** First wait; each next one doubles, up to `maxMs`. */
  baseMs: number;
  maxMs: number;
  onRetry?: (attempt: number, waitMs: number, err: unknown) => void;
  /** An error no retry can mend: thrown at once. */
  isPermanent?: (err: unknown) => boolean;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/**
 * Exponential backoff with full jitter: the wait before attempt n+1 is a
 * random time up to min(maxMs, baseMs * 2^(n-1)), so instances restarted
 * together do not knock on the database in step.
 */
export function backoffMs(
  attempt: number,
  o: Pick<RetryOptions, "baseMs" | "maxMs">,
  random = Math.random,
): number {
  const cap = Math.min(o.maxMs, o.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(random() * cap);
}

export async function retry<T>(fn: () => Promise<T>, o: RetryOptions): Promise<T> {
  const sleep = o.sleep ?? ((ms: number) => Bun.sleep(ms));
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= o.attempts || o.isPermanent?.(err)) throw err;
      const wait = backoffMs(attempt, o, o.random);
      o.onRetry?.(attempt, wait, err);
      await sleep(wait);
    }
  }
}
