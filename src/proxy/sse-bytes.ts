// Server-sent events framing on bytes, by the same rules as `SseParser`
// (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
// lines end in CRLF, LF or CR, an empty line ends an event, ":" starts a
// comment, a leading byte-order mark is skipped. Nothing is decoded: an event
// is a byte range with the few fields a meter looks at (its `event:` name, its
// `data:` lines) as ranges too, so a stream can be passed on as it came and
// only the rare event that matters turned into text. Line ends are found with
// `indexOf`, so the bytes between them are never visited one by one in JS.

import { type SseEvent, SseParser } from "./sse.ts";

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;
const DATA = [0x64, 0x61, 0x74, 0x61]; // "data"
const EVENT = [0x65, 0x76, 0x65, 0x6e, 0x74]; // "event"

export interface SseByteEvent {
  /** The event exactly as received, terminating empty line included: `[start, end)`. */
  start: number;
  end: number;
  /** The stream's byte-order mark opens this event (its first three bytes). */
  bom: boolean;
  /** Value of the last `event:` line as `[nameStart, nameEnd)`; -1 when there is none. */
  nameStart: number;
  nameEnd: number;
  /** How many `data:` lines it has; the first one's value is `[dataStart, dataEnd)`. */
  dataLines: number;
  dataStart: number;
  dataEnd: number;
}

const newEvent = (start: number): SseByteEvent => ({
  start,
  end: start,
  bom: false,
  nameStart: -1,
  nameEnd: -1,
  dataLines: 0,
  dataStart: -1,
  dataEnd: -1,
});

/** Moves an unfinished event's ranges to the front of the held bytes. */
function shift(ev: SseByteEvent, by: number): void {
  ev.start -= by;
  if (ev.nameStart !== -1) {
    ev.nameStart -= by;
    ev.nameEnd -= by;
  }
  if (ev.dataLines > 0) {
    ev.dataStart -= by;
    ev.dataEnd -= by;
  }
}

/** Whether `buf` holds a UTF-8 byte-order mark at `at`. */
const bomAt = (buf: Uint8Array, at: number, end: number) =>
  end - at >= 3 && buf[at] === 0xef && buf[at + 1] === 0xbb && buf[at + 2] === 0xbf;

/** Whether the line `[at, end)` is the field `name` (the name alone, or followed by ":"). */
function isField(buf: Uint8Array, at: number, end: number, name: number[]): boolean {
  const n = name.length;
  if (end - at < n || (at + n < end && buf[at + n] !== COLON)) return false;
  for (let i = 0; i < n; i++) if (buf[at + i] !== name[i]) return false;
  return true;
}

/** Where a field's value starts: after the colon and one optional space. */
function valueAt(buf: Uint8Array, at: number, end: number): number {
  let v = at < end ? at + 1 : at;
  if (v < end && buf[v] === SPACE) v++;
  return v;
}

/**
 * Finds the events of a byte stream fed to it chunk by chunk, and calls
 * `onEvent` for each complete one with the buffer it lies in. The unfinished
 * tail of a chunk is held until the rest arrives; `push` then returns the
 * held bytes and the new chunk as one buffer, else the chunk itself.
 */
export class SseByteScanner {
  // The unfinished event is `store[from, to)`. The store is only ever
  // appended to (a new one is taken when it is full), so a buffer once
  // returned by `push` is never written again: its caller may keep it, and
  // edit it up to `complete` (the scanner still reads what comes after).
  private store = new Uint8Array(0);
  private from = 0;
  private to = 0;
  /** In the held bytes: where the first unread line starts, and how far line ends were looked for. */
  private lineAt = 0;
  private seen = 0;
  private ev = newEvent(0);
  private first = true;
  /** End of the last complete event in the buffer the last `push` returned; the rest is held. */
  complete = 0;

  constructor(private readonly onEvent: (buf: Uint8Array, ev: SseByteEvent) => void) {}

  /** Whether part of an event is held back, waiting for the rest of it. */
  get holding(): boolean {
    return this.to > this.from;
  }

  push(chunk: Uint8Array): Uint8Array {
    const held = this.to > this.from;
    const buf = held ? this.append(chunk) : chunk;
    this.scan(buf, false);
    const complete = this.complete;
    const rest = buf.byteLength - complete;
    if (rest === 0) this.from = this.to;
    else if (held) this.from += complete;
    else {
      this.from = this.to;
      this.append(chunk.subarray(complete));
    }
    this.lineAt -= complete;
    this.seen -= complete;
    shift(this.ev, complete);
    return buf;
  }

  /**
   * The stream ended: what was held is scanned to its end, an unterminated
   * last event included, and returned (empty when nothing was held).
   */
  end(): Uint8Array {
    const buf = this.store.subarray(this.from, this.to);
    this.scan(buf, true);
    this.from = this.to;
    return buf;
  }

  private append(bytes: Uint8Array): Uint8Array {
    const held = this.to - this.from;
    if (this.store.byteLength - this.to < bytes.byteLength) {
      const grown = new Uint8Array(Math.max(1024, 2 * (held + bytes.byteLength)));
      grown.set(this.store.subarray(this.from, this.to));
      this.store = grown;
      this.from = 0;
      this.to = held;
    }
    this.store.set(bytes, this.to);
    this.to += bytes.byteLength;
    return this.store.subarray(this.from, this.to);
  }

  /** Reads the lines of `buf` from `lineAt`; at the stream's end (`last`) nothing is left over. */
  private scan(buf: Uint8Array, last: boolean): void {
    const len = buf.byteLength;
    let pos = this.lineAt;
    const from = Math.max(pos, this.seen);
    let lf = buf.indexOf(LF, from);
    let cr = buf.indexOf(CR, from);
    this.complete = 0;
    while (pos < len) {
      if (lf !== -1 && lf < pos) lf = buf.indexOf(LF, pos);
      if (cr !== -1 && cr < pos) cr = buf.indexOf(CR, pos);
      let end: number;
      let next: number;
      if (cr !== -1 && (lf === -1 || cr < lf)) {
        // A CR at the very end may be the first half of a CRLF: wait for more.
        if (cr === len - 1 && !last) break;
        end = cr;
        next = buf[cr + 1] === LF ? cr + 2 : cr + 1;
      } else if (lf !== -1) {
        end = lf;
        next = lf + 1;
      } else break;
      this.line(buf, pos, end, next);
      pos = next;
    }
    this.lineAt = pos;
    this.seen = cr === len - 1 ? cr : len;
    if (!last) return;
    if (pos < len) this.line(buf, pos, len, len);
    if (this.ev.start < len) this.dispatch(buf, len);
  }

  private line(buf: Uint8Array, at: number, end: number, next: number): void {
    if (this.first) {
      this.first = false;
      if (bomAt(buf, at, end)) {
        this.ev.bom = true;
        at += 3;
      }
    }
    const ev = this.ev;
    if (at === end) {
      // An empty line ends the event; at the stream's end (no line end) it does not.
      if (end < next) this.dispatch(buf, next);
      return;
    }
    const c = buf[at];
    if (c === COLON) return;
    if (c === DATA[0] && isField(buf, at, end, DATA)) {
      if (ev.dataLines++ === 0) {
        ev.dataStart = valueAt(buf, at + DATA.length, end);
        ev.dataEnd = end;
      }
    } else if (c === EVENT[0] && isField(buf, at, end, EVENT)) {
      ev.nameStart = valueAt(buf, at + EVENT.length, end);
      ev.nameEnd = end;
    }
  }

  private dispatch(buf: Uint8Array, end: number): void {
    const ev = this.ev;
    ev.end = end;
    this.complete = end;
    this.ev = newEvent(end);
    this.onEvent(buf, ev);
  }
}

const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/** An event's name and data, as `SseParser` would give them: for the rare event worth reading. */
export function decodeEvent(buf: Uint8Array, ev: SseByteEvent): Pick<SseEvent, "event" | "data"> {
  // One data line, nearly every event: its value and its name are ranges already.
  if (ev.dataLines === 1) {
    return {
      event:
        ev.nameStart === -1 ? undefined : decoder.decode(buf.subarray(ev.nameStart, ev.nameEnd)),
      data: decoder.decode(buf.subarray(ev.dataStart, ev.dataEnd)),
    };
  }
  const parser = new SseParser();
  const text = decoder.decode(buf.subarray(ev.bom ? ev.start + 3 : ev.start, ev.end));
  return parser.push(text)[0] ?? parser.end() ?? { event: undefined, data: undefined };
}
