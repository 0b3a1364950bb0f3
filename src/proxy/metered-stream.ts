import type { Dialect } from "../errors.ts";
import { estimatedUsage, NO_TOKENS, type TokenUsage } from "../models/token-usage.ts";
import { SseParser } from "./sse.ts";
import { StreamUsage } from "./usage.ts";

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
   * Receives a function that ends the stream at once, charging what is known
   * so far (shutdown cannot wait for it any longer).
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

const STREAM = { stream: true };

/** Whether the text decoder and the parser hold nothing back after `chunk`. */
const endsClean = (chunk: Uint8Array, parser: SseParser) =>
  !parser.holding && (chunk.byteLength === 0 || (chunk[chunk.byteLength - 1] ?? 0) < 0x80);

/**
 * Passes an upstream SSE body to the client as it arrives, reading usage on
 * the way. Chunks are forwarded untouched unless the usage chunk must be
 * hidden: then a chunk of whole events without it still goes on untouched,
 * and any other is forwarded as the whole events it completes (each as
 * received), the hidden one left out. If the
 * client goes away, the upstream is still read, up to `drainMs`, so the
 * request is charged what it cost: disconnecting never makes a request free.
 */
export function meteredStream(opts: MeteredStreamOptions): ReadableStream<Uint8Array> {
  const reader = opts.upstream.getReader();
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  const parser = new SseParser();
  const usage = new StreamUsage(opts.dialect);
  let finished = false;
  let abandoned = false;
  // Nothing of an earlier chunk is held back (by the decoder or the parser).
  let clean = true;
  // A silent upstream is cut: its read then fails, and the stream ends as broken.
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  const touch = () => {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(opts.onIdle, opts.idleMs);
  };
  touch();

  /**
   * Reads one chunk; returns what the client should get of it. Once the
   * upstream has reported final usage, the charge is recorded before the
   * chunk that carries it is passed on: a client that has seen the end of
   * its answer is always charged, even if the process dies a moment later.
   */
  const consume = (chunk: Uint8Array): Uint8Array | null => {
    if (!finished) touch();
    // A leading byte-order mark is dropped by the decoder: such a chunk is rebuilt.
    const aligned = clean && chunk[0] !== 0xef;
    const events = parser.push(decoder.decode(chunk, STREAM));
    clean = endsClean(chunk, parser);
    let out: Uint8Array | null = chunk;
    if (!opts.hideUsageChunk) {
      for (const ev of events) usage.observe(ev);
    } else {
      const hidden = events.map((ev) => usage.observe(ev));
      // A chunk of whole events with nothing hidden goes on as it came;
      // otherwise the events it completes, minus the hidden one.
      if (!aligned || !clean || hidden.includes(true)) {
        let text = "";
        for (let i = 0; i < events.length; i++) if (!hidden[i]) text += events[i]?.raw ?? "";
        out = text === "" ? null : encoder.encode(text);
      }
    }
    if (usage.complete) finish(false);
    return out;
  };

  /** The stream's end: whatever is left over, if anything. */
  const endOfStream = (): Uint8Array | null => {
    const tail = decoder.decode();
    const events = tail ? parser.push(tail) : [];
    const last = parser.end();
    if (last) events.push(last);
    let out = "";
    for (const ev of events) if (!usage.observe(ev) || !opts.hideUsageChunk) out += ev.raw;
    usage.end();
    return opts.hideUsageChunk && out !== "" ? encoder.encode(out) : null;
  };

  const finish = (broken: boolean) => {
    if (finished) return;
    finished = true;
    clearTimeout(idleTimer);
    const estimated = !usage.complete;
    const tokens = estimated
      ? estimateTokens(opts.requestBytes, usage.contentEvents, usage.inputTokens)
      : (usage.tokens ?? 0);
    const byKind = estimated
      ? estimatedUsage(tokens, usage.inputTokens === null ? null : usage.usage)
      : (usage.usage ?? NO_TOKENS);
    opts.onDone({ tokens, estimated, abandoned, broken }, byKind);
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

  opts.onForceable?.(() => {
    finish(true);
    void reader.cancel().catch(() => {});
  });

  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      // Read until there is something to hand over: a pull that enqueues
      // nothing is not called again, which would stall the stream.
      for (;;) {
        if (abandoned) return;
        let result: Awaited<ReturnType<typeof reader.read>>;
        try {
          result = await reader.read();
        } catch (err) {
          finish(true);
          if (!abandoned) controller.error(err);
          end();
          return;
        }
        if (abandoned) {
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
      abandoned = true;
      end();
      if (!finished) void drain();
    },
  });
}
