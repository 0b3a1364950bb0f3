import { createHash, randomBytes } from "node:crypto";

/** Every key Tollgate issues starts with this; legacy keys may not. */
export const KEY_PREFIX = "pk_";

/** Longest key string we will even hash: anything longer is not a key. */
export const MAX_KEY_LENGTH = 256;

/** Characters of the key kept in clear for display: enough to tell keys apart, far too few to guess the rest. */
const DISPLAY_CHARS = 10;

/** A new secret: `pk_` + 32 random bytes in base64url (43 characters). */
export function generateKey(): string {
  return KEY_PREFIX + randomBytes(32).toString("base64url");
}

/** Keys are looked up by SHA-256 hex; the secret itself is never stored. */
export function hashKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** The start of a key, kept in clear to tell keys apart in logs and listings. */
export function displayPrefix(key: string): string {
  return key.slice(0, DISPLAY_CHARS);
}

/** How a key is shown to people: its prefix and an ellipsis. */
export function maskedKey(prefix: string): string {
  return `${prefix}…`;
}

/**
 * Whether a presented string could be a key at all. Rejecting absurd input
 * before hashing keeps odd headers from costing anything.
 */
export function isPlausibleKey(key: string): boolean {
  return key.length >= 1 && key.length <= MAX_KEY_LENGTH && /^[\x21-\x7e]+$/.test(key);
}
