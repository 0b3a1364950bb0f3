/** What `withTimeout` rejects with when the time runs out first. */
export class TimeoutError extends Error {}

/**
 * `work`'s outcome, or a `TimeoutError` once `ms` pass without one. The timer
 * is cleared either way; `work` itself goes on (nothing here can cancel it),
 * and a late rejection of it is handled, not left unhandled.
 */
export function withTimeout<T>(
  work: Promise<T>,
  ms: number,
  message = `no answer within ${ms} ms`,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(message)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
