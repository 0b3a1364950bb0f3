import { type ErrorCode, GatewayError } from "../errors.ts";

// The admin API's codes: a part of the one closed set in src/errors.ts, which
// gives each its status and renders its body ({"error":{"code","message"}}).
export const ADMIN_ERROR_CODES = [
  "validation_error",
  "unauthorized",
  "csrf_failed",
  "not_found",
  "conflict",
  "too_many_attempts",
  "internal_error",
  "storage_unavailable",
] as const satisfies readonly ErrorCode[];

export type AdminErrorCode = (typeof ADMIN_ERROR_CODES)[number];

/** An expected failure of an admin operation; only the HTTP layer or the CLI renders it. */
export class AdminError extends GatewayError<AdminErrorCode> {}

interface Issue {
  path: ReadonlyArray<PropertyKey>;
  message: string;
  code?: string;
  keys?: readonly string[];
}

/** One readable line from a zod error: the first problem, prefixed with the field it is about. */
export function describeIssues(issues: ReadonlyArray<Issue>): string {
  const issue = issues[0];
  if (!issue) return "invalid input";
  const where = issue.path.map(String).join(".");
  if (issue.code === "unrecognized_keys" && issue.keys?.length) {
    const field = [where, issue.keys[0]].filter(Boolean).join(".");
    return `${field}: unknown field`;
  }
  const message = /received undefined$/.test(issue.message) ? "is required" : issue.message;
  return where ? `${where}: ${message}` : message;
}
