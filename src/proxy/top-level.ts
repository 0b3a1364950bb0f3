import { isUtf8 } from "node:buffer";
import { GOVERNED_FIELDS, plainFieldText } from "./as-sent.ts";
import { scanObject } from "./json-scan.ts";

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
  constructor(readonly bytes: Uint8Array) {}
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
const decoder = new TextDecoder();
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
  for (const m of scanned.members) {
    const keyBytes = bytes.subarray(m.keyStart, m.keyEnd);
    const escaped = keyBytes.includes(BACKSLASH);
    const key = escaped
      ? (JSON.parse(decoder.decode(keyBytes)) as string)
      : decoder.decode(keyBytes.subarray(1, -1));
    const valueBytes = bytes.subarray(m.valueStart, m.valueEnd);
    let v: unknown;
    if (GOVERNED.has(key)) {
      const text = decoder.decode(valueBytes);
      v = JSON.parse(text);
      if (escaped || seen.has(key) || !plainFieldText(text)) plain = false;
      seen.add(key);
    } else {
      v = new RawJson(valueBytes);
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

const encoder = new TextEncoder();

/**
 * The body to send for `body`, a JSON object whose top-level values may be
 * RawJson: each member in order, governed values serialised, the others as
 * the bytes they came as. Plain JSON.stringify when there is no RawJson.
 */
export function spliceBody(body: Record<string, unknown>): string | Uint8Array {
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
  let size = 0;
  const encoded = parts.map((p) => {
    const b = typeof p === "string" ? encoder.encode(p) : p;
    size += b.byteLength;
    return b;
  });
  const out = new Uint8Array(size);
  let at = 0;
  for (const b of encoded) {
    out.set(b, at);
    at += b.byteLength;
  }
  return out;
}
