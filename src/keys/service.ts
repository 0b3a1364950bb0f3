import { randomBytes } from "node:crypto";
import { z } from "zod";
import type { KeyPatch, KeyRecord, Storage } from "../storage/types.ts";
import { displayPrefix, generateKey, hashKey } from "./secret.ts";

// Key operations, shared by every front end (CLI now, admin API later).
// Input is parsed here once; storage below trusts it.

const name = z.string().trim().min(1, "name must not be empty").max(200, "name is too long");
const limit = z
  .number()
  .int("limit must be a whole number of tokens")
  .min(0, "limit must not be negative")
  .max(Number.MAX_SAFE_INTEGER, "limit is too large");
const model = z.string().trim().min(1).max(200).nullable();
const expiresAt = z.number().int().nullable();
/** Requests in flight at once; null = none of its own (the gateway default applies). */
const maxConcurrent = z
  .number()
  .int("concurrency must be a whole number of requests")
  .min(1, "concurrency must be at least 1")
  .max(2_147_483_647, "concurrency is too large")
  .nullable();
/** Tokens per rolling 7 days; null = no weekly limit. */
const weeklyLimit = z
  .number()
  .int("weekly limit must be a whole number of tokens")
  .min(0, "weekly limit must not be negative")
  .max(Number.MAX_SAFE_INTEGER, "weekly limit is too large")
  .nullable();

/** Model names or glob patterns; an empty list means none of its own (null = any model). */
const allowedModels = z
  .array(
    z.string().trim().min(1, "a model name must not be empty").max(200, "a model name is too long"),
  )
  .max(100, "at most 100 models")
  .nullable()
  .transform((list) => (list === null || list.length === 0 ? null : [...new Set(list)]));

export const createKeyInput = z.object({
  name,
  tokenLimit: limit,
  model: model.default(null),
  expiresAt: expiresAt.default(null),
  maxConcurrent: maxConcurrent.default(null),
  weeklyLimit: weeklyLimit.default(null),
  allowedModels: allowedModels.default(null),
});
export type CreateKeyInput = z.input<typeof createKeyInput>;

export const updateKeyInput = z
  .object({
    name: name.optional(),
    tokenLimit: limit.optional(),
    model: model.optional(),
    expiresAt: expiresAt.optional(),
    maxConcurrent: maxConcurrent.optional(),
    weeklyLimit: weeklyLimit.optional(),
    allowedModels: allowedModels.optional(),
    disabled: z.boolean().optional(),
  })
  .refine((p) => Object.values(p).some((v) => v !== undefined), "nothing to update");

export class KeyInputError extends Error {}

/** A whole secret rather than an id, prefix or name. */
const OWN_KEY_SHAPE = /^pk_[A-Za-z0-9_-]{20,}$/;

function parse<T>(schema: z.ZodType<T>, input: unknown): T {
  const r = schema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
    throw new KeyInputError(`${where}${issue?.message ?? "invalid input"}`);
  }
  return r.data;
}

export interface IssuedKey {
  record: KeyRecord;
  /** The secret, shown once and never stored. */
  secret: string;
}

export function newKeyId(): string {
  return `key_${randomBytes(8).toString("hex")}`;
}

export async function createKey(
  storage: Storage,
  input: CreateKeyInput,
  now: number,
): Promise<IssuedKey> {
  const v = parse(createKeyInput, input);
  const secret = generateKey();
  const record = await storage.createKey({
    id: newKeyId(),
    keyHash: hashKey(secret),
    keyPrefix: displayPrefix(secret),
    name: v.name,
    tokenLimit: v.tokenLimit,
    model: v.model,
    expiresAt: v.expiresAt,
    maxConcurrent: v.maxConcurrent,
    weeklyLimit: v.weeklyLimit,
    allowedModels: v.allowedModels,
    createdAt: now,
  });
  return { record, secret };
}

export async function updateKey(
  storage: Storage,
  id: string,
  patch: KeyPatch,
  now: number,
): Promise<KeyRecord | null> {
  return storage.updateKey(id, parse(updateKeyInput, patch), now);
}

export async function rotateKey(
  storage: Storage,
  id: string,
  now: number,
): Promise<IssuedKey | null> {
  const secret = generateKey();
  const record = await storage.rotateKey(id, hashKey(secret), displayPrefix(secret), now);
  return record ? { record, secret } : null;
}

/**
 * Finds exactly one key by id, display prefix or name, or by the key itself
 * (looked up by hash). A key-shaped reference is never echoed back. A name
 * shared by a revoked key and a live one means the live one, or with
 * `prefer: "revoked"` (purge) the revoked one.
 */
export async function resolveKey(
  storage: Storage,
  ref: string,
  prefer: "live" | "revoked" = "live",
): Promise<KeyRecord> {
  const clean = ref.trim().replace(/…$/, "");
  if (OWN_KEY_SHAPE.test(clean)) {
    const byHash = await storage.getKeyByHash(hashKey(clean));
    if (byHash) return byHash;
    throw new KeyInputError("no key matches that secret (give its id, prefix or name)");
  }
  let found = await storage.findKeys(clean);
  if (found.length > 1) {
    const preferred = found.filter((k) => (k.revokedAt !== null) === (prefer === "revoked"));
    if (preferred.length === 1) found = preferred;
  }
  if (found.length === 0)
    throw new KeyInputError(`no key matches "${ref}" (give its id, prefix or name)`);
  if (found.length > 1) {
    const ids = found.map((k) => k.id).join(", ");
    throw new KeyInputError(`"${ref}" matches ${found.length} keys (${ids}); give the id instead`);
  }
  return found[0] as KeyRecord;
}
