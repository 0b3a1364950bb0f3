import type { Dialect } from "../errors.ts";
import { estimatedUsage, NO_TOKENS, type TokenUsage } from "../models/token-usage.ts";
import { SseByteScanner } from "./sse-bytes.ts";
import { StreamUsage } from "./usage.ts";
import { ByteUsageReader } from "./usage-bytes.ts";

export interface StreamOutcome {
  tokens: number;
  /** True when the upstream never reported final usage and `tokens` is our estimate. */
  estimated: boolean;
  /** The client went away before the end. */
  abandoned: boolean;
  /** The upstream stream broke (error or drain deadline) before its end. */
  broken: boolean;
}

export interface MeteredStreamOptions {
  upstream: ReadableStream<Uint8Array>;
  dialect: Dialect;
  /** Drop OpenAI's usage-only chunk (the client did not ask for it). */
  hideUsageChunk: boolean;
  /** How long an abandoned stream is still read for its usage. */
  drainMs: number;
  /** Longest silence from the upstream before the stream is given up (`onIdle` is called). */
  idleMs: number;
  /** Called when the upstream has been silent for `idleMs`: abort the upstream call. */
  onIdle: () => void;
  /** Size of the request body, for the estimate when usage never comes. */
  requestBytes: number;
  /**
   * Called exactly once, when the stream's cost is known, with `tokens` by
   * kind (an estimate counts as output tokens).
   */
  onDone: (outcome: StreamOutcome, usage: TokenUsage) => void;
  /**
   * Receives a function that settles the stream at once (`onDone`) with what
   * is known so far: shutdown cannot wait for it any longer. It holds only
   * what the settlement needs, never the stream itself.
   */
  onForceable?: (forceFinish: () => void) => void;
  /** Called once when the client's side is over: its last chunk handed over, an error, or the client left. */
  onEnd?: () => void;
}

/**
 * Estimate for a response whose usage never came (README, "Abandoned streams
 * are charged"): the input tokens the upstream did report, else about four
 * bytes of request per input token, plus one token per streamed piece of the
 * answer (each carries about one token). Used only when the upstream never
 * said.
 */
export function estimateTokens(
  requestBytes: number,
  contentEvents: number,
  reportedInput: number | null = null,
): number {
  return (reportedInput ?? Math.ceil(requestBytes / 4)) + contentEvents;
}

/**
 * Removes the ranges `cuts` (pairs of start and end, in order) from
 * `buf[0, length)` in place; returns what is left, or null when nothing is.
 */
function cutOut(buf: Uint8Array, length: number, cuts: number[]): Uint8Array | null {
  if (length === 0) return null;
  if (cuts.length === 0) return length === buf.byteLength ? buf : buf.subarray(0, length);
  let write = cuts[0] ?? 0;
  for (let i = 1; i < cuts.length; i += 2) {
    const from = cuts[i] ?? 0;
    const to = cuts[i + 1] ?? length;
    buf.copyWithin(write, from, to);
    write += to - from;
  }
  return write === 0 ? null : buf.subarray(0, write);
}

/**
 * What a stream is known to have cost, and its settlement, made once. It is
 * kept apart from the stream's reader and buffers on purpose: shutdown's
 * way to force the charge (`onForceable`) holds it from the usage ledger,
 * which is long-lived, and a hold on the whole stream (its reader, the
 * upstream's stream, its buffers) made the engine's young collections trace
 * every stream in flight each time: measured, twice the collection time per
 * streamed request.
 */
class StreamCost {
  finished = false;
  /** The client went away before the end. */
  abandoned = false;

  constructor(
    private readonly usage: StreamUsage,
    private readonly requestBytes: number,
    private readonly onDone: MeteredStreamOptions["onDone"],
  ) {}

  finish(broken: boolean): void {
    if (this.finished) return;
    this.finished = true;
    const usage = this.usage;
    const estimated = !usage.complete;
    const tokens = estimated
      ? estimateTokens(this.requestBytes, usage.contentEvents, usage.inputTokens)
      : (usage.tokens ?? 0);
    const byKind = estimated
      ? estimatedUsage(tokens, usage.inputTokens === null ? null : usage.usage)
      : (usage.usage ?? NO_TOKENS);
    this.onDone({ tokens, estimated, abandoned: this.abandoned, broken }, byKind);
  }
}

/**
 * Shutdown's way in: the stream is settled with what is known so far. The
 * stream itself is left as it is (the process is about to exit); whatever it
 * reads afterwards charges nothing more, and its idle timer no longer cuts it.
 */
function forcing(cost: StreamCost): () => void {
  return () => cost.finish(true);
}

/**
 * The idle timer's callback: cuts a silent upstream while the stream is
 * still to be settled. It reaches only the cost and `onIdle`, like the hold.
 */
function whileUnsettled(cost: StreamCost, onIdle: () => void): () => void {
  return () => {
    if (!cost.finished) onIdle();
  };
}

/**
 * Passes an upstream SSE body to the client as it arrives, reading usage on
 * the way. Chunks are forwarded untouched, and only the few events that can
 * carry usage are ever decoded (see `ByteUsageReader`). When the usage chunk
 * must be hidden, a chunk goes on as the whole events it completes: a chunk
 * of whole events without it as it came, the hidden one cut out of it in
 * place. If the client goes away, the upstream is still read, up to
 * `drainMs`, so the request is charged what it cost: disconnecting never
 * makes a request free.
 */
export function meteredStream(opts: MeteredStreamOptions): ReadableStream<Uint8Array> {
  const reader = opts.upstream.getReader();
  const usage = new StreamUsage(opts.dialect);
  const usageReader = new ByteUsageReader(usage, opts.dialect);
  // Byte ranges (start, end) of the buffer being read that the client must not see.
  const cuts: number[] = [];
  const scanner = new SseByteScanner((buf, ev) => {
    const usageOnly = usageReader.observe(buf, ev);
    if (!opts.hideUsageChunk) return;
    // Hiding rebuilds the stream from its events: a leading byte-order mark goes too.
    if (usageOnly) cuts.push(ev.start, ev.end);
    else if (ev.bom) cuts.push(ev.start, ev.start + 3);
  });

  /** What the client gets of `buf`, read up to `length`: all of it, or what hiding leaves. */
  const visible = (buf: Uint8Array, length: number): Uint8Array | null => {
    const out = cutOut(buf, length, cuts);
    cuts.length = 0;
    return out;
  };

  /**
   * Reads one chunk; returns what the client should get of it. Once the
   * upstream has reported final usage, the charge is recorded before the
   * chunk that carries it is passed on: a client that has seen the end of
   * its answer is always charged, even if the process dies a moment later.
   */
  const consume = (chunk: Uint8Array): Uint8Array | null => {
    if (!cost.finished) idleTimer.refresh();
    const buf = scanner.push(chunk);
    const out = opts.hideUsageChunk ? visible(buf, scanner.complete) : chunk;
    if (usage.complete) finish(false);
    return out;
  };

  /** The stream's end: whatever is left over, if anything. */
  const endOfStream = (): Uint8Array | null => {
    const rest = scanner.end();
    usage.end();
    return opts.hideUsageChunk ? visible(rest, rest.byteLength) : null;
  };

  const cost = new StreamCost(usage, opts.requestBytes, opts.onDone);
  // A silent upstream is cut: its read then fails, and the stream ends as
  // broken. The timer does not hold the process: a stream settled by
  // shutdown leaves its timer behind.
  const idleTimer = setTimeout(whileUnsettled(cost, opts.onIdle), opts.idleMs);
  idleTimer.unref?.();
  const finish = (broken: boolean) => {
    if (cost.finished) return;
    clearTimeout(idleTimer);
    cost.finish(broken);
  };

  const drain = async () => {
    const deadline = setTimeout(() => void reader.cancel().catch(() => {}), opts.drainMs);
    let broken = false;
    try {
      while (!usage.complete) {
        const { done, value } = await reader.read();
        if (done) {
          endOfStream();
          break;
        }
        consume(value);
      }
    } catch {
      broken = true;
    } finally {
      clearTimeout(deadline);
      finish(broken || !usage.complete);
      void reader.cancel().catch(() => {});
    }
  };

  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    opts.onEnd?.();
  };

  opts.onForceable?.(forcing(cost));

  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      // Read until there is something to hand over: a pull that enqueues
      // nothing is not called again, which would stall the stream.
      for (;;) {
        if (cost.abandoned) return;
        let result: Awaited<ReturnType<typeof reader.read>>;
        try {
          result = await reader.read();
        } catch (err) {
          finish(true);
          if (!cost.abandoned) controller.error(err);
          end();
          return;
        }
        if (cost.abandoned) {
          // The client left while this read was pending; the drain loop reads on.
          if (!result.done) consume(result.value);
          return;
        }
        if (result.done) {
          const rest = endOfStream();
          if (rest) controller.enqueue(rest);
          finish(false);
          controller.close();
          end();
          return;
        }
        const out = consume(result.value);
        if (out) {
          controller.enqueue(out);
          return;
        }
      }
    },
    cancel() {
      cost.abandoned = true;
      end();
      if (!cost.finished) void drain();
    },
  });
}
