import { keyChanges, updateAction } from "../audit/changes.ts";
import * as service from "../keys/service.ts";
import { KeyInputError } from "../keys/service.ts";
import type { ModelTable } from "../models/cost.ts";
import type { PlanCapacity } from "../quota/plan.ts";
import type { AuditActor, KeyPatch, KeyRecord, Storage } from "../storage/types.ts";
import { WEEK_MS, windowFloor } from "../time/buckets.ts";
import { AdminError } from "./errors.ts";
import { keyObject, windowUsageOf } from "./key-view.ts";
import type {
  IssuedKeyObject,
  KeyList,
  KeyObject,
  ListKeysQuery,
  PurgedKey,
  RevokedKey,
} from "./schemas.ts";

// Key operations shared by the admin API and the CLI, so both give the same
// answer for the same request. Input is already parsed; failures are AdminErrors.

export interface AdminDeps {
  storage: Storage;
  clock: () => number;
  /** Told after a key changed or went, so this process obeys it at once (the key cache). */
  onKeyChanged?: (keyId: string) => void;
  /** What the upstream plan delivers (UPSTREAM_PLAN_5H, UPSTREAM_PLAN_WEEKLY); unset = not declared. */
  plan?: PlanCapacity;
  /** MODELS_FILE (currency and prices for the per-model views); flat when unset. */
  models?: ModelTable;
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
const revokedAlready = (k: KeyRecord) =>
  new AdminError(
    "conflict",
    `key ${k.id} ("${k.name}") is revoked: it can no longer be changed or rotated`,
  );

/** Appends the audit entry of a change to one key. */
async function audit(
  deps: AdminDeps,
  actor: AuditActor,
  action: string,
  key: KeyRecord,
  changes: Record<string, unknown> | null,
  now: number,
): Promise<void> {
  await deps.storage.appendAudit({
    at: now,
    actor,
    action,
    keyId: key.id,
    keyPrefix: key.keyPrefix,
    keyName: key.name,
    changes,
  });
}

/** The key, or not_found; a revoked one is refused when `live` is asked for. */
async function existing(deps: AdminDeps, id: string, live = false): Promise<KeyRecord> {
  const k = await deps.storage.getKeyById(id);
  if (!k) throw notFound(id);
  if (live && k.revokedAt !== null) throw revokedAlready(k);
  return k;
}

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
  const { include_revoked, ...rest } = q;
  const page = await deps.storage.listKeys({ ...rest, includeRevoked: include_revoked, now });
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

export async function createKey(
  deps: AdminDeps,
  input: NewKeyInput,
  actor: AuditActor,
): Promise<IssuedKeyObject> {
  const now = deps.clock();
  const { record, secret } = await validated(() => service.createKey(deps.storage, input, now));
  await audit(deps, actor, "key.create", record, keyChanges(null, record), now);
  return { ...keyObject(record, { used: 0, oldestStart: null }, now), key: secret };
}

export async function updateKey(
  deps: AdminDeps,
  id: string,
  patch: KeyPatch,
  actor: AuditActor,
): Promise<KeyObject> {
  const now = deps.clock();
  const before = await existing(deps, id, true);
  const updated = await validated(() => service.updateKey(deps.storage, id, patch, now));
  if (!updated) throw notFound(id);
  deps.onKeyChanged?.(id);
  const changes = keyChanges(before, updated);
  if (Object.keys(changes).length > 0) {
    await audit(deps, actor, updateAction(changes), updated, changes, now);
  }
  return withWindow(deps.storage, updated, now);
}

export async function rotateKey(
  deps: AdminDeps,
  id: string,
  actor: AuditActor,
): Promise<IssuedKeyObject> {
  const now = deps.clock();
  const before = await existing(deps, id, true);
  const issued = await service.rotateKey(deps.storage, id, now);
  if (!issued) throw notFound(id);
  deps.onKeyChanged?.(id);
  await audit(deps, actor, "key.rotate", issued.record, keyChanges(before, issued.record), now);
  return { ...(await withWindow(deps.storage, issued.record, now)), key: issued.secret };
}

/**
 * Revokes a key: its secret stops working at once, on every instance, and
 * its name, limits, totals and history stay. Revoking a revoked key changes
 * nothing and records nothing.
 */
export async function revokeKey(
  deps: AdminDeps,
  id: string,
  actor: AuditActor,
): Promise<RevokedKey> {
  const now = deps.clock();
  const before = await existing(deps, id);
  const revoked = await deps.storage.revokeKey(id, now);
  if (!revoked) throw notFound(id);
  deps.onKeyChanged?.(id);
  if (before.revokedAt === null) {
    await audit(deps, actor, "key.revoke", revoked, keyChanges(before, revoked), now);
  }
  return { id, revoked: true, key: await withWindow(deps.storage, revoked, now) };
}

/**
 * Erases a revoked key and its usage for good (data-protection requests).
 * A key still in use must be revoked first, so no purge stops a working key
 * by surprise. The audit log keeps the key's id and prefix, not its name.
 */
export async function purgeKey(deps: AdminDeps, id: string, actor: AuditActor): Promise<PurgedKey> {
  const now = deps.clock();
  const k = await existing(deps, id);
  if (k.revokedAt === null) {
    throw new AdminError(
      "conflict",
      `key ${id} is not revoked; revoke it first (keys delete, or DELETE /admin/keys/${id})`,
    );
  }
  if (!(await deps.storage.deleteKey(id))) throw notFound(id);
  deps.onKeyChanged?.(id);
  await deps.storage.appendAudit({
    at: now,
    actor,
    action: "key.purge",
    keyId: id,
    keyPrefix: k.keyPrefix,
    keyName: null,
    changes: { total_lifetime_tokens: k.totalTokens, total_requests: k.totalRequests },
  });
  return { id, purged: true };
}
