import type { Dialect } from "../errors.ts";

// Building the upstream request. Pure: no I/O.

/**
 * Query parameters the gateway's own endpoints pass on: Anthropic's SDKs add
 * `?beta=true` to beta calls. Nothing else steers the upstream from the query.
 */
const KNOWN_QUERY_PARAMS = new Set(["beta"]);

/**
 * `query`: "known" for the gateway's own endpoints (only known parameters
 * pass), "any" for paths the operator added (all but the key).
 */
export function upstreamUrl(
  dialect: Dialect,
  base: string,
  path: string,
  search: string,
  query: "known" | "any" = "any",
): string {
  // OpenAI-compatible bases already end in their version (…/paas/v4), so the
  // client's /v1 goes; Anthropic-compatible bases expect the full /v1/… path.
  const rest = dialect === "openai" ? path.replace(/^\/v1(?=\/|$)/, "") : path;
  return base + rest + (query === "known" ? knownParams(search) : withoutKeyParam(search));
}

function knownParams(search: string): string {
  if (search === "") return search;
  const params = new URLSearchParams(search);
  const kept = new URLSearchParams();
  for (const [k, v] of params) if (KNOWN_QUERY_PARAMS.has(k)) kept.append(k, v);
  const s = kept.toString();
  return s ? `?${s}` : "";
}

/**
 * The `api_key` query parameter is ours; the upstream must never see it, in
 * whatever encoding it came (`api%5Fkey` decodes to the same name). A query
 * without it is passed on byte for byte.
 */
export function withoutKeyParam(search: string): string {
  if (search === "") return search;
  const params = new URLSearchParams(search);
  if (!params.has("api_key")) return search;
  params.delete("api_key");
  const s = params.toString();
  return s ? `?${s}` : "";
}

/**
 * One spelling per path: repeated slashes collapsed and a trailing slash
 * dropped, so `/v1//chat/completions/` is recognised (and governed by the
 * key's rules) like the path an upstream would normalise it to.
 */
export function canonicalPath(path: string): string {
  if (!path.includes("//") && !path.endsWith("/")) return path;
  const p = path.replace(/\/{2,}/g, "/");
  return p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p;
}

/** Paths whose body names a model. */
const MODEL_PATHS: Record<Dialect, RegExp> = {
  openai: /^\/v1\/(chat\/completions|completions|embeddings|responses|moderations)$/,
  anthropic: /^\/v1\/messages(\/count_tokens)?$/,
};

export function namesModel(dialect: Dialect, path: string): boolean {
  return MODEL_PATHS[dialect].test(path);
}

/** Paths whose stream can carry a usage chunk when asked (`stream_options.include_usage`). */
const OPENAI_USAGE_STREAM_PATHS = /^\/v1\/(chat\/completions|completions)$/;

export interface PreparedBody {
  body: Record<string, unknown>;
  model: string | undefined;
  stream: boolean;
  /** OpenAI only: we asked for the usage chunk and the client did not, so it must be hidden. */
  hideUsageChunk: boolean;
  /** Whether the rules changed the body (else it says what the client sent). */
  changed: boolean;
}

/** The fields `prepareBody` reads: a body goes upstream as sent only if each is plain (as-sent.ts). */
export const PREPARED_FIELDS = ["model", "stream", "stream_options", "include_usage"] as const;

/**
 * Applies the key's rules to a JSON request body: a key's model override is
 * forced; otherwise the request's model is used, else the default model. An
 * OpenAI stream always asks for usage, which is how streamed tokens get charged.
 */
export function prepareBody(
  dialect: Dialect,
  path: string,
  input: Record<string, unknown>,
  keyModel: string | null,
  defaultModel: string,
): PreparedBody {
  const body = { ...input };
  let changed = false;
  const modelPath = namesModel(dialect, path);
  if (keyModel && (modelPath || "model" in body)) {
    changed = body.model !== keyModel;
    body.model = keyModel;
  } else if (modelPath && (typeof body.model !== "string" || body.model === "")) {
    changed = true;
    body.model = defaultModel;
  }
  const stream = body.stream === true;
  let hideUsageChunk = false;
  if (dialect === "openai" && stream && OPENAI_USAGE_STREAM_PATHS.test(path)) {
    const opts =
      typeof body.stream_options === "object" && body.stream_options !== null
        ? (body.stream_options as Record<string, unknown>)
        : {};
    hideUsageChunk = opts.include_usage !== true;
    if (hideUsageChunk) changed = true;
    body.stream_options = { ...opts, include_usage: true };
  }
  return {
    body,
    model: typeof body.model === "string" ? body.model : undefined,
    stream,
    hideUsageChunk,
    changed,
  };
}
