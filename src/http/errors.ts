import { type Dialect, errorResponse, GatewayError } from "../errors.ts";
import type { AccessLog } from "./access-log.ts";

/**
 * A request that failed, answered in its route's dialect. Expected failures
 * carry a code, which goes into the log line; anything else is our bug: it
 * is logged, and the caller gets a 500, never a stack trace.
 */
export function renderError(err: unknown, dialect: Dialect, access: AccessLog): Response {
  if (err instanceof GatewayError) {
    access.fields.error = err.code;
    return errorResponse(dialect, err);
  }
  access.error({ err }, "unhandled error");
  return errorResponse(dialect, new GatewayError("internal_error", "internal error"));
}
