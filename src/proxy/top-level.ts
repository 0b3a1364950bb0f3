import { isUtf8 } from "node:buffer";
import { GOVERNED_FIELDS, plainFieldText } from "./as-sent.ts";
import { scanObject } from "./json-scan.ts";
import { SplicedBody } from "./spliced-body.ts";

// A request body's top-level object as the gateway reads it: the fields it
// governs parsed, every other value kept as the bytes it came as. Pure.
//
// The gateway reads only a few top-level fields (as-sent.ts lists them); a
// coding agent's body is hundreds of KB of conversation around them. Reading
// it this way checks all of it (json-scan.ts) but builds only those fields,
// and a body the key's rules change is written back by splicing the new
// fields between the untouched bytes of the others.

/** A top-level value the gateway does not read: the bytes it came as, valid JSON. */
export class RawJson {
  constructor(
    private readonly body: Uint8Array,
    private readonly start: number,
    private readonly end: number,
  ) {}

  get bytes(): Uint8Array {
    return this.body.subarray(this.start, this.end);
  }
}

export interface TopLevel {
  /** The object: governed fields parsed, every other value a RawJson. */
  value: Record<string, unknown>;
  /**
   * Whether the bytes may go upstream as they came, should the key's rules
   * leave the object alone: each governed field appears once, spelled
   * plainly, with its number (if any) a plain integer; nothing before the `{`.
   */
  plain: boolean;
}

const GOVERNED = new Set(GOVERNED_FIELDS);
// A key is its bytes exactly: a leading U+FEFF is part of it (a default
// decoder would drop it, reading "\uFEFFmax_tokens" as max_tokens where the
// upstream reads another key).
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const BACKSLASH = 0x5c;

/**
 * `bytes` read as one JSON object nested at most `maxDepth` deep, or null
 * when they are not one (not UTF-8, not JSON, not an object, too deep): the
 * caller then reads them the slow way, which says what is wrong.
 */
export function readTopLevel(bytes: Uint8Array, maxDepth: number): TopLevel | null {
  if (!isUtf8(bytes)) return null;
  const scanned = scanObject(bytes, maxDepth);
  if (scanned === null) return null;
  const value: Record<string, unknown> = {};
  const seen = new Set<string>();
  let plain = scanned.start === 0;
  for (const { keyStart, keyEnd, valueStart, valueEnd } of scanned.members) {
    const plainKey = asciiText(bytes, keyStart + 1, keyEnd - 1);
    const key =
      plainKey ?? (JSON.parse(decoder.decode(bytes.subarray(keyStart, keyEnd))) as string);
    let v: unknown;
    if (GOVERNED.has(key)) {
      v = governedValue(bytes, valueStart, valueEnd);
      // Written plainly, once: else the body is written anew (as-sent.ts).
      if (plainKey === null && bytes.subarray(keyStart, keyEnd).includes(BACKSLASH)) plain = false;
      if (seen.has(key) || !plainValue(bytes, valueStart, valueEnd)) plain = false;
      seen.add(key);
    } else {
      v = new RawJson(bytes, valueStart, valueEnd);
    }
    // As JSON.parse does: a repeated key keeps its first place and its last
    // value, and "__proto__" is a key like any other.
    if (key === "__proto__") {
      Object.defineProperty(value, key, {
        value: v,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else {
      value[key] = v;
    }
  }
  return { value, plain };
}

// The common keys and values (`"model"`, `"glm-4.7"`, `true`, `4096`) are
// short ASCII: read straight from the bytes, without a decoder or a parser.

/** The text of bytes [start, end) when it is short ASCII with no backslash, else null. */
function asciiText(b: Uint8Array, start: number, end: number): string | null {
  if (end - start > 64) return null;
  let s = "";
  for (let i = start; i < end; i++) {
    const c = b[i] as number;
    if (c >= 0x80 || c === BACKSLASH) return null;
    s += String.fromCharCode(c);
  }
  return s;
}

/** Whether bytes [start, end) are a plain integer of at most 15 digits (exact; no fraction, no exponent). */
function isPlainInteger(b: Uint8Array, start: number, end: number): boolean {
  const from = b[start] === 0x2d ? start + 1 : start;
  if (end - from < 1 || end - from > 15) return false;
  for (let i = from; i < end; i++) {
    const c = b[i] as number;
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** A governed field's value, parsed (it is valid JSON: the scanner said so). */
function governedValue(b: Uint8Array, start: number, end: number): unknown {
  const c = b[start];
  if (c === 0x74) return true;
  if (c === 0x66) return false;
  if (c === 0x6e) return null;
  if (isPlainInteger(b, start, end)) return Number(asciiText(b, start, end));
  if (c === 0x22) {
    const text = asciiText(b, start + 1, end - 1);
    if (text !== null) return text;
  }
  return JSON.parse(decoder.decode(b.subarray(start, end)));
}

/** Whether a governed field's value reaches any parser as the gateway read it (as-sent.ts). */
function plainValue(b: Uint8Array, start: number, end: number): boolean {
  const c = b[start];
  if (c === 0x74 || c === 0x66 || c === 0x6e || isPlainInteger(b, start, end)) return true;
  if (c === 0x22 && !b.subarray(start, end).includes(BACKSLASH)) return true;
  return plainFieldText(decoder.decode(b.subarray(start, end)));
}

const encoder = new TextEncoder();

/**
 * The body to send for `body`, a JSON object whose top-level values may be
 * RawJson: each member in order, governed values serialised, the others as
 * the bytes they came as, kept as pieces until sent (spliced-body.ts).
 * Plain JSON.stringify when there is no RawJson.
 */
export function spliceBody(body: Record<string, unknown>): string | SplicedBody {
  if (!Object.values(body).some((v) => v instanceof RawJson)) return JSON.stringify(body);
  const parts: Array<string | Uint8Array> = [];
  let text = "{";
  let first = true;
  for (const key of Object.keys(body)) {
    const v = body[key];
    if (v instanceof RawJson) {
      text += `${first ? "" : ","}${JSON.stringify(key)}:`;
      parts.push(text, v.bytes);
      text = "";
      first = false;
      continue;
    }
    // As JSON.stringify: members it would leave out are left out.
    const json = JSON.stringify(v);
    if (json === undefined) continue;
    text += `${first ? "" : ","}${JSON.stringify(key)}:${json}`;
    first = false;
  }
  parts.push(`${text}}`);
  return new SplicedBody(parts.map((p) => (typeof p === "string" ? encoder.encode(p) : p)));
}
