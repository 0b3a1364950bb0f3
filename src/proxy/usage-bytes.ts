import type { Dialect } from "../errors.ts";
import { decodeEvent, type SseByteEvent } from "./sse-bytes.ts";
import type { StreamUsage } from "./usage.ts";

// Usage read from a stream's bytes. Of all events only a few can carry usage
// (OpenAI: the chunk whose `"usage"` is an object; Anthropic: message_start
// and message_delta). They are found by a byte search and only they are
// decoded and parsed; the others are merely counted when they carry a piece
// of the answer (for an estimate), from their `event:` name and data bytes.

const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const CONTENT_BLOCK_DELTA = ascii("content_block_delta");
const RESPONSE_PREFIX = ascii("response.");
const DELTA_SUFFIX = ascii(".delta");
const DONE = ascii("[DONE]");

const G = 0x67;
const QUOTE = 0x22;

/** Whether `buf[at, at + pattern.length)` is `pattern`. */
function bytesAt(buf: Uint8Array, at: number, pattern: Uint8Array): boolean {
  for (let i = 0; i < pattern.length; i++) if (buf[at + i] !== pattern[i]) return false;
  return true;
}

/**
 * Where the next `"usage"` key whose value is an object starts in `buf`, from
 * `from` on, or -1: the byte form of `hasUsageObject`. Every data text that
 * passes that test holds these bytes, so nothing is missed. The search runs
 * on the rare "g" of the word (natively, by `indexOf`) and checks around it.
 */
export function usageObjectAt(buf: Uint8Array, from: number): number {
  for (let g = buf.indexOf(G, from + 4); g !== -1; g = buf.indexOf(G, g + 1)) {
    if (buf[g + 1] !== 0x65 || buf[g + 2] !== QUOTE || buf[g - 1] !== 0x61) continue; // e" a
    if (buf[g - 2] !== 0x73 || buf[g - 3] !== 0x75 || buf[g - 4] !== QUOTE) continue; // s u "
    let i = g + 3;
    while (buf[i] === 0x20 || buf[i] === 0x3a || buf[i] === 0x09) i++; // space : tab
    if (buf[i] === 0x7b) return g - 4; // {
  }
  return -1;
}

/**
 * Whether an event carries a piece of the answer, as `StreamUsage` counts
 * them: it has data, and (Anthropic) is a `content_block_delta`, or (OpenAI)
 * is a Responses API `….delta` event, or any chat chunk but `[DONE]`.
 */
export function isContentEvent(dialect: Dialect, buf: Uint8Array, ev: SseByteEvent): boolean {
  if (ev.dataLines === 0) return false;
  const name = ev.nameEnd - ev.nameStart;
  if (dialect === "anthropic")
    return name === CONTENT_BLOCK_DELTA.length && bytesAt(buf, ev.nameStart, CONTENT_BLOCK_DELTA);
  if (ev.nameStart !== -1 && name >= RESPONSE_PREFIX.length) {
    if (bytesAt(buf, ev.nameStart, RESPONSE_PREFIX))
      return bytesAt(buf, ev.nameEnd - DELTA_SUFFIX.length, DELTA_SUFFIX);
  }
  const done =
    ev.dataLines === 1 &&
    ev.dataEnd - ev.dataStart === DONE.length &&
    bytesAt(buf, ev.dataStart, DONE);
  return !done;
}

/**
 * Feeds a `StreamUsage` from the events an `SseByteScanner` finds. The search
 * for usage runs once over each buffer, however many events it holds.
 */
export class ByteUsageReader {
  private buf: Uint8Array | undefined;
  private hit = -1;

  constructor(
    private readonly usage: StreamUsage,
    private readonly dialect: Dialect,
  ) {}

  /** Reads one event; true for OpenAI's usage-only chunk (as `StreamUsage.observe`). */
  observe(buf: Uint8Array, ev: SseByteEvent): boolean {
    if (buf !== this.buf || (this.hit !== -1 && this.hit < ev.start)) {
      this.buf = buf;
      this.hit = usageObjectAt(buf, ev.start);
    }
    if (this.hit !== -1 && this.hit < ev.end) return this.usage.observe(decodeEvent(buf, ev));
    if (isContentEvent(this.dialect, buf, ev)) this.usage.contentEvents++;
    return false;
  }
}
