import { Command, Option } from "commander";
import { maskedKey } from "../keys/secret.ts";
import { createKey, resolveKey, rotateKey, updateKey } from "../keys/service.ts";
import { windowFloor, windowUsage } from "../quota/window.ts";
import type { KeyPatch, Storage } from "../storage/types.ts";
import { confirm, type WithStorage } from "./context.ts";
import { describeKey, keyJson, keyStatus, printJson, printTable } from "./output.ts";
import { parseExpiry, parseTokens } from "./parse.ts";

/**
 * Commander turns an option parser's `null` into "", so "never" (null) travels
 * wrapped in an object.
 */
type Expiry = { at: number | null };
const expiryOption = (v: string): Expiry => ({ at: parseExpiry(v) });

async function windowUsed(storage: Storage, keyId: string, now: number): Promise<number> {
  return windowUsage(await storage.usageSince(keyId, windowFloor(now)), now);
}

export function keysCommand(withStorage: WithStorage): Command {
  const keys = new Command("keys").description("create and manage API keys");

  keys
    .command("create")
    .description("create a key and print its secret (shown this once only)")
    .requiredOption("--name <name>", "who or what the key is for")
    .requiredOption(
      "--limit <tokens>",
      "token quota per rolling 5 hours (e.g. 100000, 100k, 2M)",
      parseTokens,
    )
    .option("--model <model>", "force this model on every request made with the key")
    .option("--expires <when>", "expiry: ISO date or date-time, 30d, or never", expiryOption)
    .option("--json", "print JSON")
    .action(
      (o: { name: string; limit: number; model?: string; expires?: Expiry; json?: boolean }) =>
        withStorage(async (storage) => {
          const now = Date.now();
          const { record, secret } = await createKey(
            storage,
            {
              name: o.name,
              tokenLimit: o.limit,
              model: o.model ?? null,
              expiresAt: o.expires?.at ?? null,
            },
            now,
          );
          if (o.json) return printJson(keyJson(record, { key: secret }));
          process.stdout.write(
            `Created key "${record.name}" (${record.id}).\n\n  ${secret}\n\n` +
              "This is the only time the key is shown: store it now and hand it to its holder.\n\n" +
              `${describeKey(record, now)}\n`,
          );
        }),
    );

  keys
    .command("list")
    .description("list keys, newest first")
    .addOption(
      new Option("--status <status>", "which keys")
        .choices(["all", "active", "expired"])
        .default("all"),
    )
    .option("--limit <n>", "at most this many", (v) => parseTokens(v), 100)
    .option("--offset <n>", "skip this many", (v) => parseTokens(v), 0)
    .option("--json", "print JSON")
    .action(
      (o: {
        status: "all" | "active" | "expired";
        limit: number;
        offset: number;
        json?: boolean;
      }) =>
        withStorage(async (storage) => {
          const now = Date.now();
          const page = await storage.listKeys({
            limit: o.limit,
            offset: o.offset,
            now,
            status: o.status,
          });
          const used = await Promise.all(page.keys.map((k) => windowUsed(storage, k.id, now)));
          if (o.json) {
            return printJson({
              total: page.total,
              keys: page.keys.map((k, i) => keyJson(k, { tokens_used_in_current_window: used[i] })),
            });
          }
          if (page.keys.length === 0) {
            process.stdout.write(
              "No keys. Create one with: tollgate keys create --name NAME --limit 100000\n",
            );
            return;
          }
          printTable(
            ["ID", "NAME", "KEY", "STATUS", "USED (5h)", "LIMIT", "LIFETIME", "EXPIRES"],
            page.keys.map((k, i) => [
              k.id,
              k.name,
              maskedKey(k.keyPrefix),
              keyStatus(k, now),
              String(used[i] ?? 0),
              String(k.tokenLimit),
              String(k.totalTokens),
              k.expiresAt === null ? "never" : new Date(k.expiresAt).toISOString(),
            ]),
          );
          if (page.total > o.offset + page.keys.length) {
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
        const now = Date.now();
        const k = await resolveKey(storage, ref);
        const used = await windowUsed(storage, k.id, now);
        if (o.json) return printJson(keyJson(k, { tokens_used_in_current_window: used }));
        process.stdout.write(`${describeKey(k, now, used)}\n`);
      }),
    );

  keys
    .command("update <key>")
    .description("change a key's name, limit, model, expiry or state")
    .option("--name <name>", "new name")
    .option("--limit <tokens>", "new token quota per 5 hours", parseTokens)
    .option("--model <model>", "force this model (use --no-model to remove the override)")
    .option("--no-model", "remove the model override")
    .option("--expires <when>", "new expiry: ISO date or date-time, 30d, or never", expiryOption)
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
          disable?: boolean;
          enable?: boolean;
          json?: boolean;
        },
      ) =>
        withStorage(async (storage) => {
          if (o.disable && o.enable)
            throw new Error("--disable and --enable contradict each other");
          const k = await resolveKey(storage, ref);
          const patch: KeyPatch = {
            name: o.name,
            tokenLimit: o.limit,
            // commander: --model X gives "X", --no-model gives false, neither gives true (the default).
            model: o.model === false ? null : typeof o.model === "string" ? o.model : undefined,
            expiresAt: o.expires?.at,
            disabled: o.disable ? true : o.enable ? false : undefined,
          };
          const updated = await updateKey(storage, k.id, patch, Date.now());
          if (!updated) throw new Error(`key ${k.id} was deleted meanwhile`);
          if (o.json) return printJson(keyJson(updated));
          process.stdout.write(
            `Updated ${updated.id}; running gateways apply it within a second.\n${describeKey(updated, Date.now())}\n`,
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
        const issued = await rotateKey(storage, k.id, Date.now());
        if (!issued) throw new Error(`key ${k.id} was deleted meanwhile`);
        if (o.json) return printJson(keyJson(issued.record, { key: issued.secret }));
        process.stdout.write(
          `Rotated ${k.id} ("${k.name}"). The old secret stops working within a second.\n\n  ${issued.secret}\n\n` +
            "This is the only time the new key is shown: store it now.\n",
        );
      }),
    );

  keys
    .command("delete <key>")
    .description("delete a key and its usage history")
    .option("--force", "do not ask for confirmation")
    .option("--json", "print JSON")
    .action((ref: string, o: { force?: boolean; json?: boolean }) =>
      withStorage(async (storage) => {
        const k = await resolveKey(storage, ref);
        if (!o.force) {
          await confirm(
            `Delete key ${k.id} ("${k.name}", ${maskedKey(k.keyPrefix)}) and its usage history?`,
          );
        }
        const deleted = await storage.deleteKey(k.id);
        if (o.json) return printJson({ id: k.id, deleted });
        process.stdout.write(
          deleted ? `Deleted ${k.id} ("${k.name}").\n` : `${k.id} was already gone.\n`,
        );
      }),
    );

  return keys;
}
