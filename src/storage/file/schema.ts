import { z } from "zod";
import { legacyBucket, legacyFile, legacyKey, legacyRollingCache } from "../../legacy/format.ts";
import { describeJsonError } from "../../legacy/json-error.ts";

// The legacy `apikeys.json` as Tollgate reads and writes it: the old format,
// plus fields of our own that the old gateway never reads (the schemas are
// `.loose()`, so fields of its own survive too). Keys created by Tollgate
// carry no plaintext `key`, only `key_sha256`; legacy entries keep theirs so
// that a rollback to the old gateway still works.

const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const isoDate = legacyKey.shape.created_at;

const fileBucket = legacyBucket.extend({ requests: count.optional() });

const fileModelUsage = z.object({
  model: z.string().max(200),
  bucket_start: count,
  input_tokens: count,
  output_tokens: count,
  cache_read_tokens: count,
  cache_write_tokens: count,
  units: count,
  requests: count,
  spend_micros: count,
});
export type FileModelUsage = z.output<typeof fileModelUsage>;

export const fileKey = legacyKey
  .extend({
    key: legacyKey.shape.key.optional(),
    id: z.string().min(1).max(200).optional(),
    key_sha256: z.string().min(1).max(256).optional(),
    key_prefix: z.string().max(64).optional(),
    disabled: z.boolean().optional(),
    /** Requests in flight at once; absent = no limit of its own. */
    max_concurrent: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
    /** Tokens per rolling 7 days; absent = no weekly limit. */
    token_limit_per_week: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    /** Model names or glob patterns the key may use; absent = any model. */
    allowed_models: z.array(z.string().min(1).max(200)).min(1).max(100).optional(),
    total_requests: count.optional(),
    updated_at: isoDate.optional(),
    /** When the key was revoked; its `key_sha256` is then a marker no secret hashes to. */
    revoked_at: isoDate.optional(),
    rolling_window_cache: legacyRollingCache.extend({ buckets: z.array(fileBucket) }).nullish(),
    /** Usage per model and hour (MODELS_FILE history); the old gateway ignores it. */
    tollgate_model_usage: z.array(fileModelUsage).optional(),
  })
  .refine((k) => k.key !== undefined || k.key_sha256 !== undefined, {
    message: "has neither `key` nor `key_sha256`",
  });

const fileAuditEntry = z.object({
  id: count,
  at: count,
  actor_kind: z.enum(["cli", "api", "dashboard"]),
  actor: z.string(),
  action: z.string(),
  key_id: z.string().nullable(),
  key_prefix: z.string().nullable(),
  key_name: z.string().nullable(),
  changes: z.record(z.string(), z.unknown()).nullable(),
});
export type FileAuditEntry = z.output<typeof fileAuditEntry>;

export const keyFile = legacyFile.extend({
  keys: z.array(fileKey),
  /** Highest usage sequence number applied per gateway instance. */
  tollgate_checkpoints: z.record(z.string(), count).optional(),
  /** The audit log, oldest first. */
  tollgate_audit: z.array(fileAuditEntry).optional(),
});

/** One key entry as parsed: defaults applied, types trusted. */
export type FileKey = z.output<typeof fileKey>;
/** The whole file as parsed. */
export type KeyFile = z.output<typeof keyFile>;
/** One key entry exactly as it is in the file: what we mutate and write back. */
export type RawKey = z.input<typeof fileKey>;
/** The file exactly as read: written back with only the touched fields changed. */
export type RawFile = z.input<typeof keyFile>;
export type RawCache = NonNullable<RawKey["rolling_window_cache"]>;

/** The legacy file is missing, unreadable or not in the expected format. */
export class KeyFileError extends Error {
  override readonly name = "KeyFileError";
}

/**
 * Parses and validates the file's text. The error names the file and the
 * first problem, with the key's position and name: never the key itself,
 * which in a legacy file is a working secret.
 */
export function parseKeyFile(text: string, path: string): { raw: RawFile; parsed: KeyFile } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new KeyFileError(
      `legacy key file ${path} is not valid JSON: ${describeJsonError(text, err)}`,
    );
  }
  const r = keyFile.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue ? describePath(issue.path, raw) : "";
    throw new KeyFileError(
      `legacy key file ${path} is invalid: ${where}${issue?.message ?? "unknown problem"}`,
    );
  }
  return { raw: raw as RawFile, parsed: r.data };
}

/** `keys[3] ("bob") token_limit_per_5h: ` from a zod issue path. */
function describePath(path: PropertyKey[], raw: unknown): string {
  if (path.length === 0) return "";
  const [top, index, ...rest] = path;
  if (top === "keys" && typeof index === "number") {
    const field = rest.length > 0 ? ` ${rest.map(String).join(".")}` : "";
    return `keys[${index}]${keyLabel(raw, index)}${field}: `;
  }
  return `${path.map(String).join(".")}: `;
}

/** The key's name, for messages: it is not secret, the key is. */
export function keyLabel(raw: unknown, index: number): string {
  const keys = (raw as { keys?: unknown } | null)?.keys;
  const name = Array.isArray(keys) ? (keys[index] as { name?: unknown } | null)?.name : undefined;
  return typeof name === "string" ? ` (${JSON.stringify(name.slice(0, 60))})` : "";
}
