import { Command, Option } from "commander";
import { describeIssues } from "../admin/errors.ts";
import * as ops from "../admin/operations.ts";
import { listKeysQuery } from "../admin/schemas.ts";
import { cliActor } from "../audit/actor.ts";
import { maskedKey } from "../keys/secret.ts";
import { resolveKey } from "../keys/service.ts";
import type { KeyPatch, Storage } from "../storage/types.ts";
import { CliError, confirm, skipQuestion, type WithStorage } from "./context.ts";
import { describeKey, printJson, printTable } from "./output.ts";
import {
  parseConcurrency,
  parseExpiry,
  parseLimit,
  parseModels,
  parseNewExpiry,
  parseTokens,
} from "./parse.ts";
import { keyUsageCommand } from "./usage.ts";

// Every command runs the admin API's own operation, so `--json` prints what
// the API answers for the same request.

/**
 * Commander turns an option parser's `null` into "", so "never" (null) travels
 * wrapped in an object.
 */
type Expiry = { at: number | null };
const expiryOption = (v: string): Expiry => ({ at: parseExpiry(v) });
const newExpiryOption = (v: string): Expiry => ({ at: parseNewExpiry(v) });

const deps = (storage: Storage): ops.AdminDeps => ({ storage, clock: Date.now });

export function keysCommand(withStorage: WithStorage): Command {
  const keys = new Command("keys").description("create and manage API keys");

  keys
    .command("create")
    .description("create a key and print its secret (shown this once only)")
    .requiredOption("--name <name>", "who or what the key is for")
    .requiredOption(
      "--limit <tokens>",
      "token quota per rolling 5 hours (e.g. 100000, 100k, 2M)",
      parseLimit,
    )
    .option("--model <model>", "force this model on every request made with the key")
    .option("--expires <when>", "expiry: ISO date or date-time, 30d, or never", newExpiryOption)
    .option(
      "--concurrency <n>",
      "requests the key may have in flight at once (default: DEFAULT_KEY_CONCURRENCY)",
      parseConcurrency,
    )
    .option(
      "--weekly-limit <tokens>",
      "token quota per rolling 7 days as well (default: none)",
      parseTokens,
    )
    .option(
      "--models <list>",
      "models the key may use, comma-separated; globs allowed (e.g. glm-4.*,glm-5)",
      parseModels,
    )
    .option("--json", "print JSON")
    .action(
      (o: {
        models?: string[];
        name: string;
        limit: number;
        model?: string;
        expires?: Expiry;
        concurrency?: number;
        weeklyLimit?: number;
        json?: boolean;
      }) =>
        withStorage(async (storage) => {
          const created = await ops.createKey(
            deps(storage),
            {
              name: o.name,
              tokenLimit: o.limit,
              model: o.model ?? null,
              expiresAt: o.expires?.at ?? null,
              maxConcurrent: o.concurrency ?? null,
              weeklyLimit: o.weeklyLimit ?? null,
              allowedModels: o.models ?? null,
            },
            cliActor(),
          );
          if (o.json) return printJson(created);
          const { key, ...shown } = created;
          process.stdout.write(
            `Created key "${created.name}" (${created.id}).\n\n  ${key}\n\n` +
              "This is the only time the key is shown: store it now and hand it to its holder.\n\n" +
              `${describeKey(shown)}\n`,
          );
        }),
    );

  keys
    .command("list")
    .description("list keys, newest first")
    .addOption(
      new Option("--status <status>", "which keys (revoked keys show only with revoked or --all)")
        .choices(["all", "active", "expired", "disabled", "revoked"])
        .default("all"),
    )
    .option("--all", "revoked keys too")
    .option("--model <model>", "only keys whose model override is exactly this")
    .option("--search <text>", "name contains it, or the key's prefix starts with it")
    .option("--limit <n>", "at most this many (1 to 500)", "50")
    .option("--offset <n>", "skip this many", "0")
    .option("--json", "print JSON")
    .action(
      (o: {
        status: string;
        model?: string;
        search?: string;
        limit: string;
        offset: string;
        all?: boolean;
        json?: boolean;
      }) =>
        withStorage(async (storage) => {
          const { all, ...rest } = o;
          const q = listKeysQuery.safeParse({ ...rest, include_revoked: all ? "true" : undefined });
          if (!q.success) throw new CliError(describeIssues(q.error.issues));
          const page = await ops.listKeys(deps(storage), q.data);
          if (o.json) return printJson(page);
          if (page.keys.length === 0) {
            process.stdout.write(
              page.total === 0 && !o.model && !o.search && o.status === "all"
                ? "No keys. Create one with: tollgate keys create --name NAME --limit 100000\n"
                : "No keys match.\n",
            );
            return;
          }
          printTable(
            [
              "ID",
              "NAME",
              "KEY",
              "STATUS",
              "USED (5h)",
              "LIMIT",
              "CONCURRENCY",
              "USED (7d)",
              "WEEKLY LIMIT",
              "LIFETIME",
              "EXPIRES",
            ],
            page.keys.map((k) => [
              k.id,
              k.name,
              maskedKey(k.prefix),
              k.status,
              String(k.usage.tokens_used_in_current_window),
              String(k.token_limit_per_5h),
              k.max_concurrent === null ? "default" : String(k.max_concurrent),
              k.weekly_usage ? String(k.weekly_usage.tokens_used_in_current_window) : "-",
              k.token_limit_per_week === null ? "none" : String(k.token_limit_per_week),
              String(k.total_lifetime_tokens),
              k.expires_at ?? "never",
            ]),
          );
          if (page.total > page.offset + page.keys.length) {
            process.stdout.write(`(${page.total} keys in all; use --offset to see more)\n`);
          }
        }),
    );

  keys
    .command("show <key>")
    .description("show one key, by id, prefix or name")
    .option("--json", "print JSON")
    .action((ref: string, o: { json?: boolean }) =>
      withStorage(async (storage) => {
        const k = await ops.getKey(deps(storage), (await resolveKey(storage, ref)).id);
        if (o.json) return printJson(k);
        process.stdout.write(`${describeKey(k)}\n`);
      }),
    );

  keys
    .command("update <key>")
    .description("change a key's name, limits, model, expiry, concurrency or state")
    .option("--name <name>", "new name")
    .option("--limit <tokens>", "new token quota per 5 hours", parseTokens)
    .option("--model <model>", "force this model (use --no-model to remove the override)")
    .option("--no-model", "remove the model override")
    .option("--expires <when>", "new expiry: ISO date or date-time, 30d, or never", expiryOption)
    .option(
      "--concurrency <n>",
      "requests in flight at once (use --no-concurrency to remove the key's own limit)",
      parseConcurrency,
    )
    .option("--no-concurrency", "remove the key's own limit (DEFAULT_KEY_CONCURRENCY applies)")
    .option(
      "--weekly-limit <tokens>",
      "new token quota per rolling 7 days (use --no-weekly-limit to remove it)",
      parseTokens,
    )
    .option("--no-weekly-limit", "remove the weekly limit (only the 5-hour one applies)")
    .option(
      "--models <list>",
      "models the key may use, comma-separated, globs allowed ('' or --no-models: any)",
      parseModels,
    )
    .option("--no-models", "let the key use any model again")
    .option("--disable", "refuse every request made with the key")
    .option("--enable", "accept the key again")
    .option("--json", "print JSON")
    .action(
      (
        ref: string,
        o: {
          name?: string;
          limit?: number;
          model?: string | false;
          expires?: Expiry;
          concurrency?: number | boolean;
          weeklyLimit?: number | boolean;
          models?: string[] | boolean;
          disable?: boolean;
          enable?: boolean;
          json?: boolean;
        },
      ) =>
        withStorage(async (storage) => {
          if (o.disable && o.enable)
            throw new CliError("--disable and --enable contradict each other");
          const k = await resolveKey(storage, ref);
          const patch: KeyPatch = {
            name: o.name,
            tokenLimit: o.limit,
            // commander: --model X gives "X", --no-model gives false, neither gives true (the default).
            model: o.model === false ? null : typeof o.model === "string" ? o.model : undefined,
            expiresAt: o.expires?.at,
            // As --model: a number, false for --no-concurrency, true (the default) for neither.
            maxConcurrent:
              o.concurrency === false
                ? null
                : typeof o.concurrency === "number"
                  ? o.concurrency
                  : undefined,
            weeklyLimit:
              o.weeklyLimit === false
                ? null
                : typeof o.weeklyLimit === "number"
                  ? o.weeklyLimit
                  : undefined,
            allowedModels:
              o.models === false ? null : Array.isArray(o.models) ? o.models : undefined,
            disabled: o.disable ? true : o.enable ? false : undefined,
          };
          const updated = await ops.updateKey(deps(storage), k.id, patch, cliActor());
          if (o.json) return printJson(updated);
          process.stdout.write(
            `Updated ${updated.id}; running gateways apply it within a second.\n${describeKey(updated)}\n`,
          );
        }),
    );

  keys
    .command("rotate <key>")
    .description("issue a new secret for a key; the old one stops working, usage and limits stay")
    .option("--json", "print JSON")
    .action((ref: string, o: { json?: boolean }) =>
      withStorage(async (storage) => {
        const k = await resolveKey(storage, ref);
        const rotated = await ops.rotateKey(deps(storage), k.id, cliActor());
        if (o.json) return printJson(rotated);
        process.stdout.write(
          `Rotated ${k.id} ("${k.name}"). The old secret stops working within a second.\n\n  ${rotated.key}\n\n` +
            "This is the only time the new key is shown: store it now.\n",
        );
      }),
    );

  keys
    .command("delete <key>")
    .description(
      "revoke a key: its secret stops working at once; its name, limits, totals and history stay",
    )
    .option("-y, --yes", "do not ask for confirmation")
    .addOption(new Option("--force", "deprecated: use --yes").hideHelp())
    .option("--json", "print JSON")
    .action((ref: string, o: { yes?: boolean; force?: boolean; json?: boolean }) =>
      withStorage(async (storage) => {
        const k = await resolveKey(storage, ref);
        if (!skipQuestion(o) && k.revokedAt === null) {
          await confirm(
            `Revoke key ${k.id} ("${k.name}", ${maskedKey(k.keyPrefix)})? Its secret stops working at once; its usage history stays.`,
          );
        }
        const revoked = await ops.revokeKey(deps(storage), k.id, cliActor());
        if (o.json) return printJson(revoked);
        process.stdout.write(
          k.revokedAt === null
            ? `Revoked ${k.id} ("${k.name}"); running gateways refuse it within a second. Its usage stays in every total.\n`
            : `${k.id} ("${k.name}") was already revoked; nothing changed.\n`,
        );
      }),
    );

  keys
    .command("purge <key>")
    .description("erase a revoked key and all its usage for good (for data-protection requests)")
    .option("-y, --yes", "do not ask for confirmation")
    .option("--json", "print JSON")
    .action((ref: string, o: { yes?: boolean; json?: boolean }) =>
      withStorage(async (storage) => {
        const k = await resolveKey(storage, ref, "revoked");
        if (k.revokedAt === null) {
          throw new CliError(
            `key ${k.id} ("${k.name}") is not revoked; revoke it first with: tollgate keys delete ${k.id}`,
          );
        }
        if (!skipQuestion(o)) {
          await confirm(
            `Erase revoked key ${k.id} ("${k.name}") and its usage (${k.totalTokens} tokens) for good? Totals will no longer include it. This cannot be undone.`,
          );
        }
        const purged = await ops.purgeKey(deps(storage), k.id, cliActor());
        if (o.json) return printJson(purged);
        process.stdout.write(`Purged ${k.id}: the key and its usage are erased.\n`);
      }),
    );

  keys.addCommand(keyUsageCommand(withStorage));
  return keys;
}
