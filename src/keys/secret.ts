import { randomBytes } from "node:crypto";

/** Every key Tollgate issues starts with this; legacy keys may not. */
export const KEY_PREFIX = "pk_";

/** Longest key string we will even hash: anything longer is not a key. */
export const MAX_KEY_LENGTH = 256;

/** Characters of the key kept in clear for display: enough to tell keys apart, far too few to guess the rest. */
const DISPLAY_CHARS = 10;

/** The shape of the keys `generateKey` makes. */
const OWN_KEY = /^pk_[A-Za-z0-9_-]{43}$/;

/** A new secret: `pk_` + 32 random bytes in base64url (43 characters). */
export function generateKey(): string {
  return KEY_PREFIX + randomBytes(32).toString("base64url");
}

/**
 * Keys are looked up by SHA-256 hex; the secret itself is never stored.
 * Bun's one-shot hash: every request hashes its key, and this is about ten
 * times cheaper than building a node:crypto Hash object.
 */
export function hashKey(key: string): string {
  return Bun.SHA256.hash(key, "hex") as string;
}

/**
 * What is kept in clear to tell keys apart in logs and listings. Our keys are
 * random from the fourth character, so their start will do. Legacy keys may
 * share a long common start, so they show their first and last characters.
 */
export function displayPrefix(key: string): string {
  if (OWN_KEY.test(key)) return key.slice(0, DISPLAY_CHARS);
  if (key.length <= 12) return `${key.slice(0, 3)}…`;
  return `${key.slice(0, 6)}…${key.slice(-4)}`;
}

/** How a key is shown to people. */
export function maskedKey(prefix: string): string {
  return prefix.includes("…") ? prefix : `${prefix}…`;
}

/**
 * Whether a presented string could be a key at all. Rejecting absurd input
 * before hashing keeps odd headers from costing anything.
 */
export function isPlausibleKey(key: string): boolean {
  return key.length >= 1 && key.length <= MAX_KEY_LENGTH && /^[\x21-\x7e]+$/.test(key);
}
