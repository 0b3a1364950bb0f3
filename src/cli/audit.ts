import { Command } from "commander";
import { auditQuery, listAudit } from "../admin/audit.ts";
import { describeIssues } from "../admin/errors.ts";
import { maskedKey } from "../keys/secret.ts";
import { resolveKey } from "../keys/service.ts";
import { CliError, type WithStorage } from "./context.ts";
import { printJson, printTable } from "./output.ts";
import { parsePastTime } from "./parse.ts";

/** One line of what changed: `name: "a" → "b", token_limit_per_5h: 1000 → 2000`. */
export function describeChanges(changes: Record<string, unknown> | null): string {
  if (!changes) return "";
  return Object.entries(changes)
    .map(([field, v]) => {
      if (v && typeof v === "object" && "before" in v && "after" in v) {
        const c = v as { before: unknown; after: unknown };
        return `${field}: ${JSON.stringify(c.before)} → ${JSON.stringify(c.after)}`;
      }
      return `${field}: ${JSON.stringify(v)}`;
    })
    .join(", ");
}

/** `tollgate audit`: who changed what and when, newest first. */
export function auditCommand(withStorage: WithStorage): Command {
  return new Command("audit")
    .description("show the audit log: who changed which key or data, and when (newest first)")
    .option("--key <key>", "only entries about this key (id, prefix or name; purged keys by id)")
    .option(
      "--since <when>",
      "only entries since then: ISO date or date-time, or 7d, 12h, 2w ago",
      (v: string) => parsePastTime(v),
    )
    .option("--limit <n>", "at most this many (1 to 500)", "50")
    .option("--offset <n>", "skip this many", "0")
    .option("--json", "print JSON")
    .action((o: { key?: string; since?: string; limit: string; offset: string; json?: boolean }) =>
      withStorage(async (storage) => {
        // A purged key is no longer found by name: its id still selects its entries.
        const keyId =
          o.key === undefined
            ? undefined
            : await resolveKey(storage, o.key).then(
                (k) => k.id,
                (err) => {
                  if (/^(key|legacy)_[\w-]+$/.test(o.key ?? "")) return o.key;
                  throw err;
                },
              );
        const q = auditQuery.safeParse({
          key: keyId,
          since: o.since,
          limit: o.limit,
          offset: o.offset,
        });
        if (!q.success) throw new CliError(describeIssues(q.error.issues));
        const page = await listAudit({ storage, clock: Date.now }, q.data);
        if (o.json) return printJson(page);
        if (page.entries.length === 0) {
          process.stdout.write("No audit entries match.\n");
          return;
        }
        printTable(
          ["TIME", "ACTOR", "ACTION", "KEY", "NAME", "CHANGES"],
          page.entries.map((e) => [
            e.at,
            `${e.actor.kind}:${e.actor.name}`,
            e.action,
            e.key_id ? `${e.key_id} ${e.key_prefix ? maskedKey(e.key_prefix) : ""}`.trim() : "-",
            e.key_name ?? "-",
            describeChanges(e.changes),
          ]),
        );
        if (page.total > page.offset + page.entries.length) {
          process.stdout.write(`(${page.total} entries in all; use --offset to see more)\n`);
        }
      }),
    );
}
