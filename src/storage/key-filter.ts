import {
  type AnyColumn,
  and,
  eq,
  gt,
  isNotNull,
  isNull,
  lte,
  or,
  type SQL,
  sql,
} from "drizzle-orm";
import type { KeyListQuery, KeyRecord } from "./types.ts";

// The filters of `listKeys`, once for SQL (both dialects: the SQL below is
// the same in SQLite and PostgreSQL) and once in memory (the file backend).
// The statuses do not overlap, and match the status a key is shown with:
// "revoked" wins over everything, then "disabled" over expiry, so "expired"
// means neither revoked nor disabled and expires_at <= now, and "active"
// means none of them. Revoked keys are hidden unless asked for.

/** `s` as a LIKE pattern that matches it literally, with `\` as escape character. */
export function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, "\\$&");
}

export interface KeyFilterColumns {
  disabled: AnyColumn;
  expiresAt: AnyColumn;
  model: AnyColumn;
  name: AnyColumn;
  keyPrefix: AnyColumn;
  revokedAt: AnyColumn;
}

/** The WHERE of a key listing; undefined when nothing is filtered. */
export function keyListWhere(t: KeyFilterColumns, q: KeyListQuery): SQL | undefined {
  const conditions: Array<SQL | undefined> = [];
  if (q.status === "revoked") conditions.push(isNotNull(t.revokedAt));
  else if (q.status !== undefined && q.status !== "all") conditions.push(isNull(t.revokedAt));
  else if (!q.includeRevoked) conditions.push(isNull(t.revokedAt));
  if (q.status === "active") {
    conditions.push(eq(t.disabled, false), or(isNull(t.expiresAt), gt(t.expiresAt, q.now)));
  } else if (q.status === "expired") {
    conditions.push(eq(t.disabled, false), lte(t.expiresAt, q.now));
  } else if (q.status === "disabled") {
    conditions.push(eq(t.disabled, true));
  }
  if (q.model !== undefined) conditions.push(eq(t.model, q.model));
  if (q.search) {
    // lower() on both sides rather than ILIKE, so both dialects run the same
    // SQL. SQLite's lower() folds ASCII only; PostgreSQL's folds all letters.
    const p = escapeLike(q.search.toLowerCase());
    conditions.push(
      or(
        sql`lower(${t.name}) like ${`%${p}%`} escape '\\'`,
        sql`lower(${t.keyPrefix}) like ${`${p}%`} escape '\\'`,
      ),
    );
  }
  return and(...conditions);
}

/** The same filters in memory. */
export function matchesKeyQuery(k: KeyRecord, q: KeyListQuery): boolean {
  const status = q.status ?? "all";
  const expired = k.expiresAt !== null && k.expiresAt <= q.now;
  const revoked = k.revokedAt !== null;
  if (status === "revoked") {
    if (!revoked) return false;
  } else if (revoked && (status !== "all" || !q.includeRevoked)) return false;
  if (status === "active" && (k.disabled || expired)) return false;
  if (status === "expired" && (k.disabled || !expired)) return false;
  if (status === "disabled" && !k.disabled) return false;
  if (q.model !== undefined && k.model !== q.model) return false;
  if (q.search) {
    const s = q.search.toLowerCase();
    return k.name.toLowerCase().includes(s) || k.keyPrefix.toLowerCase().startsWith(s);
  }
  return true;
}
