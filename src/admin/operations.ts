import * as service from "../keys/service.ts";
import { KeyInputError } from "../keys/service.ts";
import { WEEK_MS, windowFloor } from "../quota/window.ts";
import type { KeyPatch, KeyRecord, Storage } from "../storage/types.ts";
import { AdminError } from "./errors.ts";
import { keyObject, windowUsageOf } from "./key-view.ts";
import type { IssuedKeyObject, KeyList, KeyObject, ListKeysQuery } from "./schemas.ts";

// Key operations shared by the admin API and the CLI, so both give the same
// answer for the same request. Input is already parsed; failures are AdminErrors.

export interface AdminDeps {
  storage: Storage;
  clock: () => number;
  /** Told after a key changed or went, so this process obeys it at once (the key cache). */
  onKeyChanged?: (keyId: string) => void;
}

export interface NewKeyInput {
  name: string;
  tokenLimit: number;
  model?: string | null;
  expiresAt?: number | null;
  maxConcurrent?: number | null;
  weeklyLimit?: number | null;
  allowedModels?: string[] | null;
}

/** Input problems the key service finds become the API's validation errors. */
async function validated<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof KeyInputError) throw new AdminError("validation_error", err.message);
    throw err;
  }
}

const notFound = (id: string) => new AdminError("not_found", `no key with id ${id}`);

async function withWindow(storage: Storage, k: KeyRecord, now: number): Promise<KeyObject> {
  const weekly = k.weeklyLimit !== null;
  const buckets = await storage.usageSince(k.id, windowFloor(now, weekly ? WEEK_MS : undefined));
  const week = weekly ? windowUsageOf(buckets, k.weeklyLimit ?? 0, now, WEEK_MS) : undefined;
  return keyObject(k, windowUsageOf(buckets, k.tokenLimit, now), now, week);
}

/**
 * One page of keys with their window usage, read for the whole page in one
 * query. That query gives totals only, so `window_resets_at` is null here; a
 * single key's answer has it.
 */
export async function listKeys(deps: AdminDeps, q: ListKeysQuery): Promise<KeyList> {
  const now = deps.clock();
  const page = await deps.storage.listKeys({ ...q, now });
  const ids = page.keys.map((k) => k.id);
  const totals = ids.length ? await deps.storage.usageByKey(windowFloor(now), now + 1, ids) : [];
  const used = new Map(totals.map((t) => [t.keyId, t.tokens]));
  // Weekly keys' weeks, in one more query (only when the page has any).
  const weeklyIds = page.keys.filter((k) => k.weeklyLimit !== null).map((k) => k.id);
  const weekTotals = weeklyIds.length
    ? await deps.storage.usageByKey(windowFloor(now, WEEK_MS), now + 1, weeklyIds)
    : [];
  const weekUsed = new Map(weekTotals.map((t) => [t.keyId, t.tokens]));
  return {
    total: page.total,
    limit: q.limit,
    offset: q.offset,
    keys: page.keys.map((k) =>
      keyObject(k, { used: used.get(k.id) ?? 0, oldestStart: null }, now, {
        used: weekUsed.get(k.id) ?? 0,
        oldestStart: null,
      }),
    ),
  };
}

export async function getKey(deps: AdminDeps, id: string): Promise<KeyObject> {
  const now = deps.clock();
  const k = await deps.storage.getKeyById(id);
  if (!k) throw notFound(id);
  return withWindow(deps.storage, k, now);
}

export async function createKey(deps: AdminDeps, input: NewKeyInput): Promise<IssuedKeyObject> {
  const now = deps.clock();
  const { record, secret } = await validated(() => service.createKey(deps.storage, input, now));
  return { ...keyObject(record, { used: 0, oldestStart: null }, now), key: secret };
}

export async function updateKey(deps: AdminDeps, id: string, patch: KeyPatch): Promise<KeyObject> {
  const now = deps.clock();
  const updated = await validated(() => service.updateKey(deps.storage, id, patch, now));
  if (!updated) throw notFound(id);
  deps.onKeyChanged?.(id);
  return withWindow(deps.storage, updated, now);
}

export async function rotateKey(deps: AdminDeps, id: string): Promise<IssuedKeyObject> {
  const now = deps.clock();
  const issued = await service.rotateKey(deps.storage, id, now);
  if (!issued) throw notFound(id);
  deps.onKeyChanged?.(id);
  return { ...(await withWindow(deps.storage, issued.record, now)), key: issued.secret };
}

export async function deleteKey(
  deps: AdminDeps,
  id: string,
): Promise<{ id: string; deleted: true }> {
  const deleted = await deps.storage.deleteKey(id);
  if (!deleted) throw notFound(id);
  deps.onKeyChanged?.(id);
  return { id, deleted: true };
}
