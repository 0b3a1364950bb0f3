import type { Config } from "../../config.ts";
import { type Dialect, GatewayError } from "../../errors.ts";
import { lookalikeField, sendsAsItCame } from "../../proxy/as-sent.ts";
import { deferredWork } from "../../proxy/endpoints.ts";
import { namesModel, prepareBody } from "../../proxy/request.ts";
import type { KeyRecord } from "../../storage/types.ts";
import { parseJsonObject, readBody } from "../body.ts";

// The client's request body, read within its limits and with the key's rules
// applied (model override, default model, usage asked for on streams).

type JsonObject = Record<string, unknown>;

export interface RequestBody {
  /** What goes upstream as it stands: JSON re-serialised or as it came (as-sent.ts), or bytes. */
  body: string | Uint8Array | null;
  /** The JSON object it was read as, when it is one of ours to read (then it goes as JSON). */
  json: JsonObject | null;
  hideUsageChunk: boolean;
  model: string | undefined;
}

export const byteLength = (body: string | Uint8Array | null): number =>
  typeof body === "string" ? body.length : (body?.byteLength ?? 0);

/** Reads the client's body and applies the key's rules to it when it is JSON. */
export async function requestBody(
  req: Request,
  path: string,
  dialect: Dialect,
  key: KeyRecord,
  config: Config,
): Promise<RequestBody> {
  if (req.method === "GET" || req.method === "HEAD") {
    return { body: null, json: null, hideUsageChunk: false, model: undefined };
  }
  const bytes = await readBody(req, config.maxBodyBytes, config.bodyTimeoutMs);
  const type = (req.headers.get("content-type") ?? "").toLowerCase();
  // Endpoints that name a model are always read as JSON, whatever the client
  // claims, so a key's model override cannot be dodged with a content type;
  // so is any body of a key with an override that turns out to be JSON.
  const forceJson = namesModel(dialect, path) || (key.model !== null && looksLikeJson(bytes));
  if (!type.includes("json") && !forceJson) {
    // Not ours to read (uploads and the like): forwarded as it came.
    return { body: bytes, json: null, hideUsageChunk: false, model: undefined };
  }
  const json = parseJsonObject(bytes);
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
  // A body the rules left alone goes as it came when that is safe
  // (as-sent.ts): re-serialising an agent's large body costs about as much
  // as parsing it. Its text is the very bytes received (valid UTF-8, no
  // byte-order mark), and the runtime sends a string for less than bytes.
  // The size estimate then counts the text as sent, spacing included.
  const asItCame = !prepared.changed && bytes !== null && sendsAsItCame(bytes, json.text);
  return {
    body: asItCame ? json.text : serialize(prepared.body),
    json: prepared.body,
    hideUsageChunk: prepared.hideUsageChunk,
    model: prepared.model,
  };
}

/**
 * A body nested past MAX_JSON_DEPTH is refused as it is read (http/body.ts);
 * should JSON.stringify still run out of stack (a RangeError), it is the
 * client's mistake all the same.
 */
export function serialize(body: unknown): string {
  try {
    return JSON.stringify(body);
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
