import { Command } from "commander";
import { describeIssues } from "../admin/errors.ts";
import { type UsageQuery, usageQuery } from "../admin/schemas.ts";
import { keyUsage, usageTotals } from "../admin/usage.ts";
import { type Series, STEPS } from "../admin/usage-range.ts";
import { maskedKey } from "../keys/secret.ts";
import { resolveKey } from "../keys/service.ts";
import type { Storage } from "../storage/types.ts";
import { CliError, type WithStorage } from "./context.ts";
import { printJson, printTable } from "./output.ts";
import { parsePastTime } from "./parse.ts";

// Usage history from the command line: the admin API's operations and query
// parsing, so `--json` equals the API's answer for the same query.

interface RangeOptions {
  from?: string;
  to?: string;
  step?: string;
  json?: boolean;
}

function withRange(command: Command): Command {
  return command
    .option(
      "--from <when>",
      "start: ISO date or date-time, or a time ago such as 30d, 12h (default: 24 hours before --to)",
      (v) => parsePastTime(v),
    )
    .option(
      "--to <when>",
      "end, exclusive: as --from (default: the end of the current step)",
      (v) => parsePastTime(v),
    )
    .option("--step <step>", `one of ${STEPS.join(", ")}`, "1h")
    .option("--json", "print JSON");
}

function parseRange(o: RangeOptions): UsageQuery {
  const q = usageQuery.safeParse({ from: o.from, to: o.to, step: o.step });
  if (!q.success) throw new CliError(describeIssues(q.error.issues));
  return q.data;
}

const deps = (storage: Storage) => ({ storage, clock: Date.now });
const n = (v: number) => v.toLocaleString("en-US");

function printSeries(s: Series): void {
  printTable(
    ["START", "TOKENS", "REQUESTS"],
    s.points.map((p) => [p.start, String(p.tokens), String(p.requests)]),
  );
  process.stdout.write(
    `${n(s.total_tokens)} tokens in ${n(s.total_requests)} requests from ${s.from} to ${s.to}\n`,
  );
}

/** `tollgate keys usage <key>`: one key's usage per step. */
export function keyUsageCommand(withStorage: WithStorage): Command {
  return withRange(
    new Command("usage")
      .argument("<key>", "id, prefix or name")
      .description("show a key's usage history, per step"),
  ).action((ref: string, o: RangeOptions) =>
    withStorage(async (storage) => {
      const q = parseRange(o);
      const series = await keyUsage(deps(storage), (await resolveKey(storage, ref)).id, q);
      if (o.json) return printJson(series);
      printSeries(series);
    }),
  );
}

/** `tollgate usage`: usage across all keys, per step, with the keys that used most. */
export function usageCommand(withStorage: WithStorage): Command {
  return withRange(
    new Command("usage").description("show usage across all keys, per step, and the top keys"),
  ).action((o: RangeOptions) =>
    withStorage(async (storage) => {
      const totals = await usageTotals(deps(storage), parseRange(o));
      if (o.json) return printJson(totals);
      printSeries(totals);
      process.stdout.write(
        `${n(totals.keys_total)} keys, ${n(totals.keys_active)} active, ${n(totals.keys_with_usage)} with usage in the range\n`,
      );
      if (totals.by_key.length > 0) {
        process.stdout.write("\n");
        printTable(
          ["ID", "NAME", "KEY", "TOKENS", "REQUESTS"],
          totals.by_key.map((k) => [
            k.id,
            k.name,
            maskedKey(k.prefix),
            String(k.tokens),
            String(k.requests),
          ]),
        );
      }
    }),
  );
}
