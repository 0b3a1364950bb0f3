// A strict JSON reader that finds the members of a body's top-level object
// without building the values inside them. Pure.
//
// An agent's request is hundreds of KB, nearly all of it conversation the
// gateway never reads: it reads only a few top-level fields (model, stream,
// the output cap). Parsing all of it into objects and strings costs several
// times what the upstream call itself costs the gateway, most of it in
// garbage collection. This reader checks the whole text against the JSON
// grammar (RFC 8259) byte by byte, allocates nothing per value, and reports
// where each top-level member's key and value lie, so the caller parses only
// the values it reads and passes the rest on as bytes.
//
// It accepts exactly what a strict parser accepts, on bytes already known to
// be valid UTF-8. When it answers null (not JSON, not an object, nested too
// deeply), the caller reads the body the slow way, which says what is wrong.

/** Where one top-level member lies in the bytes: [start, end) of its key (quotes included) and of its value. */
export interface Member {
  keyStart: number;
  keyEnd: number;
  valueStart: number;
  valueEnd: number;
}

export interface ScannedObject {
  /** The members in the order they appear, duplicates included. */
  members: Member[];
  /** Where the object's `{` is: after a byte-order mark or white space, not 0. */
  start: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

const isWhite = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const isDigit = (c: number) => c >= ZERO && c <= NINE;
const isHex = (c: number) =>
  (c >= ZERO && c <= NINE) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

/** Characters that may follow a backslash, other than `u`: " \ / b f n r t. */
const SIMPLE_ESCAPE = new Uint8Array(256);
for (const c of '"\\/bfnrt') SIMPLE_ESCAPE[c.charCodeAt(0)] = 1;

function skipWhite(b: Uint8Array, i: number): number {
  while (i < b.length && isWhite(b[i] as number)) i++;
  return i;
}

/**
 * The bytes as 32-bit words, aligned on the buffer, so the plain run of a
 * string can be skipped four bytes at a time (a string is most of a body).
 */
interface Words {
  words: Uint32Array;
  /** The byte offset of `b` in the buffer. */
  offset: number;
  /** Words that lie wholly within `b`, counted from the buffer's start. */
  end: number;
}

/** Below this size a body's strings are short: word by word would not pay for the view. */
const WORDS_FROM_BYTES = 512;

function wordsOf(b: Uint8Array, from: number): Words | null {
  if (b.byteLength < from) return null;
  const words = new Uint32Array(b.buffer, 0, b.buffer.byteLength >>> 2);
  return { words, offset: b.byteOffset, end: (b.byteOffset + b.byteLength) >>> 2 };
}

/**
 * From `j`, the index of the first byte that may end a string's plain run
 * (a quote, a backslash or a control character), or a little before it: a
 * word of four bytes is skipped when none of them is one. Bitwise, each test
 * flags a byte that equals 0x22 or 0x5c, or is below 0x20 (exact for
 * whether any byte in the word is one, the standard zero-byte test).
 */
function skipPlain(j: number, w: Words | null): number {
  if (w === null) return j;
  const abs = w.offset + j;
  if ((abs & 3) !== 0) return j;
  let k = abs >>> 2;
  const { words, end } = w;
  while (k < end) {
    const v = words[k] as number;
    const q = v ^ 0x22222222;
    const s = v ^ 0x5c5c5c5c;
    if ((((q - 0x01010101) & ~q) | ((s - 0x01010101) & ~s) | ((v - 0x20202020) & ~v)) & 0x80808080)
      break;
    k++;
  }
  return (k << 2) - w.offset;
}

/** `i` at an opening quote: the index after its closing quote, or -1. */
function scanString(b: Uint8Array, i: number, w: Words | null): number {
  const n = b.length;
  let j = i + 1;
  for (;;) {
    // The common case, plain text: four bytes at a time, then one by one.
    let c = 0;
    for (;;) {
      j = skipPlain(j, w);
      if (j >= n) return -1;
      c = b[j] as number;
      if (c === QUOTE || c === BACKSLASH || c < 0x20) break;
      j++;
    }
    if (c < 0x20) return -1;
    if (c === QUOTE) return j + 1;
    const e = b[j + 1] as number;
    if (SIMPLE_ESCAPE[e] === 1) {
      j += 2;
    } else if (
      e === 0x75 &&
      isHex(b[j + 2] as number) &&
      isHex(b[j + 3] as number) &&
      isHex(b[j + 4] as number) &&
      isHex(b[j + 5] as number)
    ) {
      j += 6;
    } else {
      return -1;
    }
  }
}

/** `i` at `-` or a digit: the index after the number, or -1. */
function scanNumber(b: Uint8Array, i: number): number {
  let j = i;
  if (b[j] === MINUS) j++;
  if (b[j] === ZERO) {
    j++;
  } else if (isDigit(b[j] as number)) {
    while (isDigit(b[j] as number)) j++;
  } else {
    return -1;
  }
  if (b[j] === DOT) {
    j++;
    if (!isDigit(b[j] as number)) return -1;
    while (isDigit(b[j] as number)) j++;
  }
  if (b[j] === 0x65 || b[j] === 0x45) {
    j++;
    if (b[j] === PLUS || b[j] === MINUS) j++;
    if (!isDigit(b[j] as number)) return -1;
    while (isDigit(b[j] as number)) j++;
  }
  return j;
}

function scanWord(b: Uint8Array, i: number, word: readonly number[]): number {
  for (let k = 0; k < word.length; k++) if (b[i + k] !== word[k]) return -1;
  return i + word.length;
}

const TRUE = [..."true"].map((c) => c.charCodeAt(0));
const FALSE = [..."false"].map((c) => c.charCodeAt(0));
const NULL = [..."null"].map((c) => c.charCodeAt(0));

/** `i` after a key's closing quote: the index after the colon and the white space around it, or -1. */
function scanColon(b: Uint8Array, i: number): number {
  const j = skipWhite(b, i);
  return b[j] === COLON ? skipWhite(b, j + 1) : -1;
}

/** `i` at a nested object's key: the index of its value (after the colon), or -1. */
function scanKey(b: Uint8Array, i: number, w: Words | null): number {
  if (b[i] !== QUOTE) return -1;
  const j = scanString(b, i, w);
  return j < 0 ? -1 : scanColon(b, j);
}

/**
 * `i` at the start of a value nested `depth` deep (the top-level object is
 * 1): the index after the value, or -1 when it is not JSON or nests deeper
 * than `maxDepth`. Iterative: a stack of open containers, no recursion.
 */
function scanValue(
  b: Uint8Array,
  i: number,
  depth: number,
  maxDepth: number,
  w: Words | null,
): number {
  // Open containers, innermost last: 1 for an object, 0 for an array.
  const open: number[] = [];
  let j = i;
  for (;;) {
    // A value starts at j.
    const c = b[j];
    if (c === QUOTE) {
      j = scanString(b, j, w);
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (depth + open.length + 1 > maxDepth) return -1;
      const isObject = c === OPEN_BRACE;
      j = skipWhite(b, j + 1);
      if (b[j] === (isObject ? CLOSE_BRACE : CLOSE_BRACKET)) {
        j++;
      } else {
        open.push(isObject ? 1 : 0);
        if (isObject) {
          j = scanKey(b, j, w);
          if (j < 0) return -1;
        }
        continue;
      }
    } else if (c === MINUS || (c !== undefined && isDigit(c))) {
      j = scanNumber(b, j);
    } else if (c === 0x74) {
      j = scanWord(b, j, TRUE);
    } else if (c === 0x66) {
      j = scanWord(b, j, FALSE);
    } else if (c === 0x6e) {
      j = scanWord(b, j, NULL);
    } else {
      return -1;
    }
    if (j < 0) return -1;
    // After a value: close what ends here, or go on to the next element.
    for (;;) {
      if (open.length === 0) return j;
      j = skipWhite(b, j);
      const inObject = open[open.length - 1] === 1;
      const d = b[j];
      if (d === COMMA) {
        j = skipWhite(b, j + 1);
        if (inObject) {
          j = scanKey(b, j, w);
          if (j < 0) return -1;
        }
        break;
      }
      if (d !== (inObject ? CLOSE_BRACE : CLOSE_BRACKET)) return -1;
      open.pop();
      j++;
    }
  }
}

/**
 * The top-level object of `b` (valid UTF-8), member by member, or null when
 * `b` is not one JSON object nested at most `maxDepth` deep.
 */
export function scanObject(
  b: Uint8Array,
  maxDepth: number,
  /** The body size from which strings are read word by word (the tests try both ways on every body). */
  wordsFrom = WORDS_FROM_BYTES,
): ScannedObject | null {
  let i = 0;
  // A leading byte-order mark, as a decoder would drop it.
  if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) i = 3;
  i = skipWhite(b, i);
  if (b[i] !== OPEN_BRACE || maxDepth < 1) return null;
  const start = i;
  const w = wordsOf(b, wordsFrom);
  const members: Member[] = [];
  i = skipWhite(b, i + 1);
  if (b[i] === CLOSE_BRACE) {
    i++;
  } else {
    for (;;) {
      if (b[i] !== QUOTE) return null;
      const keyStart = i;
      const keyEnd = scanString(b, i, w);
      if (keyEnd < 0) return null;
      const valueStart = scanColon(b, keyEnd);
      if (valueStart < 0) return null;
      const valueEnd = scanValue(b, valueStart, 1, maxDepth, w);
      if (valueEnd < 0) return null;
      members.push({ keyStart, keyEnd, valueStart, valueEnd });
      i = skipWhite(b, valueEnd);
      if (b[i] === COMMA) {
        i = skipWhite(b, i + 1);
        continue;
      }
      if (b[i] !== CLOSE_BRACE) return null;
      i++;
      break;
    }
  }
  return skipWhite(b, i) === b.length ? { members, start } : null;
}
