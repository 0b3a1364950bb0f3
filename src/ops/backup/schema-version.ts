import { readFileSync } from "node:fs";
import { packagePath } from "../../package-root.ts";
import type { AppliedMigrations } from "../../storage/types.ts";
import type { DatabaseKind, SchemaVersion } from "./manifest.ts";

// Drizzle records each applied migration with the `when` of its journal entry
// as `created_at`; the journals shipped with this version name them.

interface JournalEntry {
  tag: string;
  when: number;
}

const folders: Record<DatabaseKind, string> = {
  sqlite: packagePath("migrations", "sqlite", "meta", "_journal.json"),
  postgres: packagePath("migrations", "pg", "meta", "_journal.json"),
};

const cache = new Map<DatabaseKind, JournalEntry[]>();

/** Migrations this version of Tollgate ships for a dialect, oldest first. */
export function knownMigrations(kind: DatabaseKind): JournalEntry[] {
  let entries = cache.get(kind);
  if (!entries) {
    const journal = JSON.parse(readFileSync(folders[kind], "utf8")) as { entries: JournalEntry[] };
    entries = journal.entries.map((e) => ({ tag: e.tag, when: e.when }));
    cache.set(kind, entries);
  }
  return entries;
}

/** The schema version a database is at, from its migrations table (`applied` rows, newest `latestAt`). */
export function schemaVersion(
  kind: DatabaseKind,
  { applied, latestAt }: AppliedMigrations,
): SchemaVersion {
  const tag = knownMigrations(kind).find((e) => e.when === latestAt)?.tag ?? null;
  return { migrations: applied, latest: tag, latestAt };
}

/** Why a database at `schema` cannot be restored by this version, or null when it can. */
export function newerSchemaReason(kind: DatabaseKind, schema: SchemaVersion): string | null {
  const known = knownMigrations(kind);
  const newest = known[known.length - 1]?.when ?? 0;
  if (schema.latestAt !== null && schema.latestAt > newest) {
    return `the backup's schema is newer than this version of Tollgate knows (a migration from ${new Date(schema.latestAt).toISOString()}); restore it with the version that made it, or upgrade first`;
  }
  return null;
}

export function describeSchema(schema: SchemaVersion): string {
  if (schema.migrations === 0) return "no migrations applied";
  return `${schema.latest ?? "an unknown migration"} (${schema.migrations} applied)`;
}
