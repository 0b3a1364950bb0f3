import type { Dialect } from "../errors.ts";

// Building the upstream request. Pure: no I/O.

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1 and RFC 9112) apply to one connection
 * and must not be forwarded; the others are replaced or recomputed by us.
 */
const DROP_REQUEST_HEADERS = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
  "accept-encoding",
  "cookie",
  // The client's own credentials: the upstream gets the operator's key instead.
  "authorization",
  "x-api-key",
]);

const DROP_RESPONSE_HEADERS = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  // The body reaches us decoded and is re-framed by our server.
  "content-encoding",
  "content-length",
  "set-cookie",
]);

export function upstreamUrl(dialect: Dialect, base: string, path: string, search: string): string {
  // OpenAI-compatible bases already end in their version (…/paas/v4), so the
  // client's /v1 goes; Anthropic-compatible bases expect the full /v1/… path.
  const rest = dialect === "openai" ? path.replace(/^\/v1(?=\/|$)/, "") : path;
  return base + rest + withoutKeyParam(search);
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
  const p = path.replace(/\/{2,}/g, "/");
  return p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p;
}

export function upstreamHeaders(incoming: Headers, dialect: Dialect, apiKey: string): Headers {
  const out = new Headers();
  const connectionListed = listedInConnection(incoming);
  incoming.forEach((value, name) => {
    if (!DROP_REQUEST_HEADERS.has(name) && !connectionListed.has(name)) out.set(name, value);
  });
  if (dialect === "anthropic") out.set("x-api-key", apiKey);
  else out.set("authorization", `Bearer ${apiKey}`);
  return out;
}

export function clientHeaders(upstream: Headers): Headers {
  const out = new Headers();
  const connectionListed = listedInConnection(upstream);
  upstream.forEach((value, name) => {
    if (!DROP_RESPONSE_HEADERS.has(name) && !connectionListed.has(name)) out.append(name, value);
  });
  return out;
}

/** Headers named in `Connection` are hop-by-hop too (RFC 9110 §7.6.1). */
function listedInConnection(h: Headers): Set<string> {
  const v = h.get("connection");
  if (!v) return new Set();
  return new Set(v.split(",").map((s) => s.trim().toLowerCase()));
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
}

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
  const modelPath = namesModel(dialect, path);
  if (keyModel && (modelPath || "model" in body)) body.model = keyModel;
  else if (modelPath && (typeof body.model !== "string" || body.model === ""))
    body.model = defaultModel;
  const stream = body.stream === true;
  let hideUsageChunk = false;
  if (dialect === "openai" && stream && OPENAI_USAGE_STREAM_PATHS.test(path)) {
    const opts =
      typeof body.stream_options === "object" && body.stream_options !== null
        ? (body.stream_options as Record<string, unknown>)
        : {};
    hideUsageChunk = opts.include_usage !== true;
    body.stream_options = { ...opts, include_usage: true };
  }
  return {
    body,
    model: typeof body.model === "string" ? body.model : undefined,
    stream,
    hideUsageChunk,
  };
}
