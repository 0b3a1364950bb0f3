import { createHash, timingSafeEqual } from "node:crypto";

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/**
 * Checks a presented admin key in constant time. Both sides are hashed first,
 * so neither the length of the real key nor how much of it a guess shares
 * shows in the time taken (timingSafeEqual needs equal lengths; digests have).
 */
export function adminKeyMatcher(adminKey: string): (presented: string) => boolean {
  const expected = digest(adminKey);
  return function matchesAdminKey(presented: string): boolean {
    return timingSafeEqual(digest(presented), expected);
  };
}
