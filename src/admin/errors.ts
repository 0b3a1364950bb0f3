// The admin API's closed set of error codes, mapped to a status in one place.
// Its body is {"error":{"code","message"}}: scripts branch on the code.

export const adminErrorStatus = {
  validation_error: 400,
  unauthorized: 401,
  csrf_failed: 403,
  not_found: 404,
  conflict: 409,
  too_many_attempts: 429,
  internal_error: 500,
  storage_unavailable: 503,
} as const;

export type AdminErrorCode = keyof typeof adminErrorStatus;

/** An expected failure of an admin operation; only the HTTP layer or the CLI renders it. */
export class AdminError extends Error {
  constructor(
    readonly code: AdminErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get status(): (typeof adminErrorStatus)[AdminErrorCode] {
    return adminErrorStatus[this.code];
  }
}

export function adminErrorBody(code: AdminErrorCode, message: string) {
  return { error: { code, message } };
}

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
