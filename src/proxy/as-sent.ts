import { DEFERRED_WORK_FIELDS } from "./endpoints.ts";
import { CAP_FIELDS } from "./output-cap.ts";
import { PREPARED_FIELDS } from "./request.ts";

// Which fields of a request body the gateway governs, and when a body may go
// upstream byte for byte, as it came, rather than written anew. Pure.
//
// Sending a body as it came is safe only if the upstream reads the very
// values the gateway read and governed. JSON lets a key appear twice, and
// parsers disagree on which one counts (the gateway's keeps the last, others
// keep the first): `{"max_tokens":100000,"max_tokens":10}` would be admitted
// as 10 and answered as 100000. So a body goes as it came only when the
// rules left it unchanged and every governed field appears once at the top
// level, spelled plainly, with a number written as a plain integer, and
// names no governed field twice inside (top-level.ts checks this). Keys that
// spell a field in another case are refused before this: see
// `lookalikeField`.

/** Every field the gateway reads from a request body to govern it. */
export const GOVERNED_FIELDS: readonly string[] = [
  ...new Set([...PREPARED_FIELDS, ...CAP_FIELDS, ...DEFERRED_WORK_FIELDS]),
];

/** A governed field used as a key, spelled plainly: `"max_tokens" :` (the names need no escaping). */
const GOVERNED_KEY = new RegExp(`"(${GOVERNED_FIELDS.join("|")})"\\s*:`, "g");
/**
 * After a key: a number that is not a plain exact integer. A fraction or an
 * exponent (`1e3`, `10.0`, `1e400`, which re-serialising would rewrite and
 * strict parsers refuse), or 16 digits or more (past 2^53, where parsers may
 * read different values).
 */
const NOT_PLAIN_INTEGER = /\s*-?(?:\d+[.eE]|\d{16})/y;

/**
 * Whether `text`, the JSON of a governed field's value, reaches a parser as
 * the gateway read it: no \u escape (in a key it could spell a field
 * unseen), a number only as a plain exact integer, and inside an object
 * (`stream_options`) no governed field named twice.
 */
export function plainFieldText(text: string): boolean {
  if (text.includes("\\u")) return false;
  NOT_PLAIN_INTEGER.lastIndex = 0;
  if (NOT_PLAIN_INTEGER.test(text)) return false;
  const seen = new Set<string>();
  GOVERNED_KEY.lastIndex = 0;
  for (let m = GOVERNED_KEY.exec(text); m !== null; m = GOVERNED_KEY.exec(text)) {
    const field = m[1] as string;
    if (seen.has(field)) return false;
    seen.add(field);
    NOT_PLAIN_INTEGER.lastIndex = GOVERNED_KEY.lastIndex;
    if (NOT_PLAIN_INTEGER.test(text)) return false;
  }
  return true;
}

const GOVERNED = new Set(GOVERNED_FIELDS);
/** A key in lower-case ASCII folds to nothing but itself: the common case, not folded. */
const PLAIN_KEY = /^[a-z0-9_]*$/;

/** Whether `key` is not a governed field but folds to one (`MAX_TOKENS`, or `ﬅream` for stream). */
function foldsToGoverned(key: string): boolean {
  if (PLAIN_KEY.test(key) || GOVERNED.has(key)) return false;
  return GOVERNED.has(key.toUpperCase().toLowerCase());
}

/**
 * A key of `body` (or of its `stream_options`) that is not a governed field
 * but is one in another case (`MAX_TOKENS`, or with a Kelvin sign for the k):
 * some upstream parsers match keys without regard to case, and would read it
 * where the gateway reads nothing. Null when there is none.
 */
export function lookalikeField(body: Record<string, unknown>): string | null {
  for (const key in body) if (foldsToGoverned(key)) return key;
  const options = body.stream_options;
  if (typeof options !== "object" || options === null || Array.isArray(options)) return null;
  for (const key in options) if (foldsToGoverned(key)) return key;
  return null;
}
