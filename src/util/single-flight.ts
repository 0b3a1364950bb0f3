/**
 * One run at a time: `run` starts `work` unless a run is under way, in which
 * case the caller joins that run and gets its outcome. Once it settles, the
 * next `run` starts afresh.
 */
export class SingleFlight<T> {
  private current: Promise<T> | undefined;

  run(work: () => Promise<T>): Promise<T> {
    this.current ??= work().finally(() => {
      this.current = undefined;
    });
    return this.current;
  }

  /** The run under way, if any. */
  get running(): Promise<T> | undefined {
    return this.current;
  }
}
