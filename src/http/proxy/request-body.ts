import type { Config } from "../../config.ts";
import { type Dialect, GatewayError } from "../../errors.ts";
import { lookalikeField } from "../../proxy/as-sent.ts";
import { deferredWork } from "../../proxy/endpoints.ts";
import type { UpstreamBody } from "../../proxy/forward.ts";
import { namesModel, prepareBody } from "../../proxy/request.ts";
import type { SplicedBody } from "../../proxy/spliced-body.ts";
import { readTopLevel, spliceBody } from "../../proxy/top-level.ts";
import type { KeyRecord } from "../../storage/types.ts";
import { MAX_JSON_DEPTH, parseJsonObject, readBody } from "../body.ts";

// The client's request body, read within its limits and with the key's rules
// applied (model override, default model, usage asked for on streams).

type JsonObject = Record<string, unknown>;

export interface RequestBody {
  /** What goes upstream as it stands: JSON as it came or written anew (top-level.ts), or bytes. */
  body: UpstreamBody;
  /** The JSON object it was read as, when it is one of ours to read (then it goes as JSON). */
  json: JsonObject | null;
  hideUsageChunk: boolean;
  model: string | undefined;
  /** The client's bytes as read: what `body` and `json` may still point into. */
  received: Uint8Array | null;
}

/** Below this, a body is left to the collector like any small object. */
const GIVE_BACK_BYTES = 64 * 1024;

/**
 * Gives the memory of a large body back at once, once it has gone upstream
 * for the last time (fetch copies a body when it is called). Left to the
 * collector, a body that outlived a young collection, as one waiting on the
 * upstream does, counts in the old generation until a full collection: an
 * agent's bodies of hundreds of KB then made every other collection a full
 * one. Its memory is detached from the buffer; nothing may read `body` or
 * `json` afterwards. Only a buffer the bytes own whole is detached.
 */
export function giveBack(prepared: RequestBody): void {
  const bytes = prepared.received;
  if (bytes === null || bytes.byteLength < GIVE_BACK_BYTES) return;
  const buffer = bytes.buffer;
  if (!(buffer instanceof ArrayBuffer) || bytes.byteOffset !== 0) return;
  if (buffer.byteLength !== bytes.byteLength) return;
  try {
    buffer.transfer(0);
  } catch {
    // Not detachable after all: the collector takes it, as before.
  }
}

/** The size of what goes upstream, in bytes (the input estimate is bytes / 4), as sent: UTF-8. */
export const byteLength = (body: UpstreamBody): number =>
  typeof body === "string" ? Buffer.byteLength(body, "utf8") : (body?.byteLength ?? 0);

/** Reads the client's body and applies the key's rules to it when it is JSON. */
export async function requestBody(
  req: Request,
  path: string,
  dialect: Dialect,
  key: KeyRecord,
  config: Config,
): Promise<RequestBody> {
  if (req.method === "GET" || req.method === "HEAD") {
    return { body: null, json: null, hideUsageChunk: false, model: undefined, received: null };
  }
  const bytes = await readBody(req, config.maxBodyBytes, config.bodyTimeoutMs);
  const type = (req.headers.get("content-type") ?? "").toLowerCase();
  // Endpoints that name a model are always read as JSON, whatever the client
  // claims, so a key's model override cannot be dodged with a content type;
  // so is any body of a key with an override that turns out to be JSON.
  const forceJson = namesModel(dialect, path) || (key.model !== null && looksLikeJson(bytes));
  if (!type.includes("json") && !forceJson) {
    // Not ours to read (uploads and the like): forwarded as it came.
    return { body: bytes, json: null, hideUsageChunk: false, model: undefined, received: bytes };
  }
  const json = readJson(bytes);
  const lookalike = lookalikeField(json.value);
  if (lookalike !== null) {
    throw new GatewayError(
      "invalid_request",
      `the field ${JSON.stringify(lookalike)} is a differently written ${JSON.stringify(lookalike.toUpperCase().toLowerCase())}; send it as that`,
    );
  }
  const prepared = prepareBody(dialect, path, json.value, key.model, config.defaultModel);
  const deferred = deferredWork(path, prepared.body);
  if (deferred) throw new GatewayError("invalid_request", deferred);
  // A body the rules left alone, its governed fields plain, goes as the
  // very bytes received; any other is written anew, its ungoverned values
  // still as they came (top-level.ts). The size estimate counts the bytes
  // sent.
  const asItCame = !prepared.changed && json.plain && bytes !== null;
  return {
    body: asItCame ? bytes : serialize(prepared.body),
    json: prepared.body,
    hideUsageChunk: prepared.hideUsageChunk,
    model: prepared.model,
    received: bytes,
  };
}

/**
 * The body's top-level object, read without building what the gateway does
 * not read; a body that is not one JSON object is read again the full way,
 * which refuses it with a 400 that says what is wrong.
 */
function readJson(bytes: Uint8Array | null): { value: Record<string, unknown>; plain: boolean } {
  const top = bytes === null ? null : readTopLevel(bytes, MAX_JSON_DEPTH);
  return top ?? { value: parseJsonObject(bytes).value, plain: false };
}

/**
 * A body nested past MAX_JSON_DEPTH is refused as it is read (http/body.ts);
 * should JSON.stringify still run out of stack (a RangeError), it is the
 * client's mistake all the same.
 */
export function serialize(body: Record<string, unknown>): string | SplicedBody {
  try {
    return spliceBody(body);
  } catch {
    throw new GatewayError("invalid_request", "request body is nested too deeply");
  }
}

function looksLikeJson(bytes: Uint8Array | null): boolean {
  if (!bytes) return false;
  for (const b of bytes) {
    if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) continue;
    return b === 0x7b; // "{"
  }
  return false;
}
