import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { Command } from "commander";
import { cliActor } from "../audit/actor.ts";
import { loadConfig } from "../config.ts";
import { CopyError, copyDatabase, copyTarget } from "../ops/copy.ts";
import { describeStorage, openStorage } from "../storage/open.ts";
import { CliError, openExisting, requireExisting } from "./context.ts";
import { printJson } from "./output.ts";

const n = (v: number) => v.toLocaleString("en-US");

export function dbCommand(): Command {
  const db = new Command("db").description("database maintenance");

  db.command("migrate")
    .description("apply the schema to the configured database (the server also does this at start)")
    .action(async () => {
      const config = loadConfig();
      const storage = await openStorage(config);
      await storage.close();
      process.stdout.write(`Schema is up to date (${describeStorage(config)}).\n`);
    });

  db.command("copy")
    .description("copy every key, its usage and totals from the configured database into another")
    .requiredOption("--to <target>", "postgres://… URL, or a SQLite file path")
    .option("--dry-run", "report what would be copied; write nothing")
    .option("--force", "copy into a target that already has keys (keys it has are left alone)")
    .option("--json", "print the report as JSON")
    .addHelpText(
      "after",
      "\nStop the gateway first so that every charge is in the source database.\n" +
        "Example: DATABASE_PATH=./data/tollgate.db npx tollgate db copy --to postgres://user:pass@db/tollgate",
    )
    .action(async (o: { to: string; dryRun?: boolean; force?: boolean; json?: boolean }) => {
      const config = loadConfig();
      let target: ReturnType<typeof copyTarget>;
      try {
        target = copyTarget(o.to);
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      const targetConfig = { ...config, storage: target };
      if (describeStorage(targetConfig) === describeStorage(config)) {
        throw new CliError("the target is the configured database itself");
      }
      requireExisting(config);
      if (target.type === "sqlite" && !existsSync(target.path)) {
        throw new CliError(
          `no database at ${resolve(target.path)} (--to); nothing was created. ` +
            `To copy into a new SQLite file, create it first: DATABASE_PATH=${target.path} tollgate db migrate`,
        );
      }
      const from = await openExisting(config);
      try {
        const to = await openStorage(targetConfig);
        try {
          const report = await copyDatabase(from, to, {
            allowNonEmpty: Boolean(o.force),
            dryRun: Boolean(o.dryRun),
            actor: cliActor(),
            onProgress: (done) => {
              if (!o.json) process.stderr.write(`\rcopied ${n(done)} keys…`);
            },
          });
          if (!o.json && !o.dryRun) process.stderr.write("\n");
          if (o.json) return printJson({ dry_run: Boolean(o.dryRun), ...report });
          const s = report.source;
          const what = `${n(s.keys)} keys, ${n(s.buckets)} usage buckets, ${n(s.lifetimeTokens)} lifetime tokens`;
          process.stdout.write(
            o.dryRun
              ? `Dry run: would copy ${what} from ${describeStorage(config)} to ${describeStorage(targetConfig)}; nothing was written.\n`
              : `Copied ${what} to ${describeStorage(targetConfig)}` +
                  `${report.skipped ? ` (${n(report.skipped)} already there, skipped)` : ""}; counts and sums verified.\n`,
          );
        } finally {
          await to.close();
        }
      } catch (err) {
        if (err instanceof CopyError) throw new CliError(err.message);
        throw err;
      } finally {
        await from.close();
      }
    });

  return db;
}
