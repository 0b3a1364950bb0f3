// Server-sent events framing (https://html.spec.whatwg.org/multipage/server-sent-events.html).
// Lines end in CRLF, LF or CR; an empty line ends an event; lines starting
// with ":" are comments; several `data:` lines join with "\n". The parser
// keeps the incomplete tail of a chunk until the rest arrives, and keeps each
// event's raw text so it can be forwarded byte for byte.

export interface SseEvent {
  /** The event exactly as received, terminating blank line included. */
  raw: string;
  /** `event:` field, if any. */
  event: string | undefined;
  /** Joined `data:` lines; undefined when the block had none (comments, keep-alives). */
  data: string | undefined;
}

export class SseParser {
  private buf = "";
  private raw = "";
  private data: string[] = [];
  private event: string | undefined;

  /** Whether part of an event is held back, waiting for the rest of it. */
  get holding(): boolean {
    return this.buf !== "" || this.raw !== "";
  }

  push(text: string): SseEvent[] {
    this.buf += text;
    const out: SseEvent[] = [];
    const buf = this.buf;
    let pos = 0;
    while (pos < buf.length) {
      const lf = buf.indexOf("\n", pos);
      const cr = buf.indexOf("\r", pos);
      let end: number;
      let next: number;
      if (cr !== -1 && (lf === -1 || cr < lf)) {
        // A CR at the very end may be the first half of a CRLF: wait for more.
        if (cr === buf.length - 1) break;
        end = cr;
        next = buf.charCodeAt(cr + 1) === 10 ? cr + 2 : cr + 1;
      } else if (lf !== -1) {
        end = lf;
        next = lf + 1;
      } else {
        break;
      }
      this.raw += buf.slice(pos, next);
      if (end === pos) out.push(this.dispatch());
      else this.field(buf.slice(pos, end));
      pos = next;
    }
    this.buf = buf.slice(pos);
    return out;
  }

  /** The stream ended: whatever is left, as a last (possibly incomplete) event. */
  end(): SseEvent | undefined {
    if (this.buf.length > 0) {
      // A CR held back in case an LF followed it ends its line after all.
      this.raw += this.buf;
      const line = this.buf.endsWith("\r") ? this.buf.slice(0, -1) : this.buf;
      if (line !== "") this.field(line);
      this.buf = "";
    }
    if (this.raw === "") return undefined;
    return this.dispatch();
  }

  private field(line: string): void {
    if (line.charCodeAt(0) === 58) return; // ":" comment
    const colon = line.indexOf(":");
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (name === "data") this.data.push(value);
    else if (name === "event") this.event = value;
  }

  private dispatch(): SseEvent {
    const ev: SseEvent = {
      raw: this.raw,
      event: this.event,
      data: this.data.length > 0 ? this.data.join("\n") : undefined,
    };
    this.raw = "";
    this.data = [];
    this.event = undefined;
    return ev;
  }
}
