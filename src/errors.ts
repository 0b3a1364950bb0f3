// One closed set of error codes, mapped to a status and to each reader's body
// in one place: the OpenAI and Anthropic dialects (so the official SDKs raise
// their proper exception classes) and the admin API (scripts branch on the code).

export type Dialect = "openai" | "anthropic";
/** Who reads an error: an SDK of either dialect, or a script of the admin API. */
export type Audience = Dialect | "admin";

export const errorCodes = {
  invalid_request: {
    status: 400,
    openai: "invalid_request_error",
    anthropic: "invalid_request_error",
  },
  missing_api_key: {
    status: 401,
    openai: "invalid_request_error",
    anthropic: "authentication_error",
  },
  invalid_api_key: {
    status: 401,
    openai: "invalid_request_error",
    anthropic: "authentication_error",
  },
  key_expired: { status: 403, openai: "permission_error", anthropic: "permission_error" },
  key_disabled: { status: 403, openai: "permission_error", anthropic: "permission_error" },
  /** The request names a model outside the key's allowed list. */
  model_not_allowed: { status: 403, openai: "permission_error", anthropic: "permission_error" },
  not_found: { status: 404, openai: "invalid_request_error", anthropic: "not_found_error" },
  request_timeout: {
    status: 408,
    openai: "invalid_request_error",
    anthropic: "invalid_request_error",
  },
  request_too_large: {
    status: 413,
    openai: "invalid_request_error",
    anthropic: "request_too_large",
  },
  too_many_failed_keys: {
    status: 429,
    openai: "rate_limit_error",
    anthropic: "rate_limit_error",
  },
  quota_exceeded: { status: 429, openai: "insufficient_quota", anthropic: "rate_limit_error" },
  /** What is left of the quota is held by the key's requests in flight; it frees up soon. */
  quota_reserved: { status: 429, openai: "rate_limit_error", anthropic: "rate_limit_error" },
  /** The key already has as many requests in flight as it may. */
  concurrency_limit: { status: 429, openai: "rate_limit_error", anthropic: "rate_limit_error" },
  /**
   * No upstream slot: every UPSTREAM_MAX_CONCURRENCY slot stayed taken for the
   * whole queue wait, or the upstream said it has too many requests at once
   * (e.g. Z.AI 1302). Retry shortly.
   */
  upstream_busy: { status: 429, openai: "rate_limit_error", anthropic: "rate_limit_error" },
  /** The upstream plan, shared by every key, is spent until a time (e.g. Z.AI 1308). */
  upstream_plan_spent: { status: 429, openai: "rate_limit_error", anthropic: "rate_limit_error" },
  internal_error: { status: 500, openai: "server_error", anthropic: "api_error" },
  upstream_not_configured: { status: 503, openai: "server_error", anthropic: "api_error" },
  upstream_unreachable: { status: 502, openai: "server_error", anthropic: "api_error" },
  storage_unavailable: { status: 503, openai: "server_error", anthropic: "overloaded_error" },
  upstream_timeout: { status: 504, openai: "timeout_error", anthropic: "timeout_error" },
  // The admin API's own (see ADMIN_ERROR_CODES); it also uses not_found,
  // internal_error and storage_unavailable above.
  validation_error: {
    status: 400,
    openai: "invalid_request_error",
    anthropic: "invalid_request_error",
  },
  unauthorized: { status: 401, openai: "invalid_request_error", anthropic: "authentication_error" },
  csrf_failed: { status: 403, openai: "permission_error", anthropic: "permission_error" },
  conflict: { status: 409, openai: "invalid_request_error", anthropic: "invalid_request_error" },
  too_many_attempts: { status: 429, openai: "rate_limit_error", anthropic: "rate_limit_error" },
} as const;

export type ErrorCode = keyof typeof errorCodes;

/** An expected failure with a code; only the HTTP layer (or the CLI) renders it. */
export class GatewayError<C extends ErrorCode = ErrorCode> extends Error {
  constructor(
    readonly code: C,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get status(): (typeof errorCodes)[C]["status"] {
    return errorCodes[this.code].status;
  }
}

export function errorBody(audience: Audience, code: ErrorCode, message: string): unknown {
  if (audience === "admin") return { error: { code, message } };
  const entry = errorCodes[code];
  if (audience === "anthropic") {
    return { type: "error", error: { type: entry.anthropic, message } };
  }
  return { error: { message, type: entry.openai, code } };
}

export function errorResponse(
  dialect: Audience,
  err: GatewayError,
  extraHeaders: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(errorBody(dialect, err.code, err.message)), {
    status: err.status,
    headers: { "content-type": "application/json", ...extraHeaders, ...err.headers },
  });
}
