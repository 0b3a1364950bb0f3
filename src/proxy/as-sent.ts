import { DEFERRED_WORK_FIELDS } from "./endpoints.ts";
import { CAP_FIELDS } from "./output-cap.ts";
import { PREPARED_FIELDS } from "./request.ts";

// Whether a client's JSON body may go upstream byte for byte, as it came,
// rather than re-serialised from what the gateway parsed. Pure.
//
// Re-serialising a coding agent's body (hundreds of KB) costs about as much
// CPU as parsing it. Sending it as it came is safe only if the upstream reads
// the very values the gateway read and governed. JSON lets a key appear
// twice, and parsers disagree on which one counts (the gateway's keeps the
// last, others keep the first): `{"max_tokens":100000,"max_tokens":10}`
// would be admitted as 10 and answered as 100000. So a body goes as it came
// only when the rules left it unchanged and every field the gateway reads
// appears at most once in it, anywhere, spelled plainly: a key written with
// `\u` escapes could spell a field a second time unseen.

/** Every field the gateway reads from a request body to govern it. */
export const GOVERNED_FIELDS: readonly string[] = [
  ...new Set([...PREPARED_FIELDS, ...CAP_FIELDS, ...DEFERRED_WORK_FIELDS]),
];

/** A governed field used as a key, spelled plainly: `"max_tokens" :` (the names need no escaping). */
const GOVERNED_KEY = new RegExp(`"(${GOVERNED_FIELDS.join("|")})"\\s*:`, "g");

/**
 * A key made of lower-case letters and `_` only, some of them written as
 * `\u` escapes: every other spelling of a governed field. (A false alarm, a
 * string that merely looks like one, only costs the re-serialisation.)
 */
const ESCAPED_KEY =
  /"(?:[a-z_]|\\u[0-9a-fA-F]{4})*\\u[0-9a-fA-F]{4}(?:[a-z_]|\\u[0-9a-fA-F]{4})*"\s*:/;

/**
 * Whether `text`, a JSON object the gateway has parsed (as `value`) and left
 * unchanged, may go upstream as it came (`bytes`, the same text as received).
 */
export function sendsAsItCame(
  bytes: Uint8Array,
  text: string,
  value: Record<string, unknown>,
): boolean {
  // A leading byte-order mark or space is no harm to us, but not every
  // upstream takes it: such a body is re-serialised, as before.
  if (bytes[0] !== 0x7b) return false;
  // A number re-serialising would rewrite (1e400 becomes null), or one past
  // exact integers, could be read otherwise upstream: re-serialised.
  for (const f of GOVERNED_FIELDS) {
    const v = value[f];
    if (typeof v === "number" && !Number.isSafeInteger(v)) return false;
  }
  if (text.includes("\\u") && ESCAPED_KEY.test(text)) return false;
  const seen = new Set<string>();
  GOVERNED_KEY.lastIndex = 0;
  for (let m = GOVERNED_KEY.exec(text); m !== null; m = GOVERNED_KEY.exec(text)) {
    const field = m[1] as string;
    if (seen.has(field)) return false;
    seen.add(field);
  }
  return true;
}
