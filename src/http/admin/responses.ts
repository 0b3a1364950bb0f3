import type { z } from "zod";
import { errorObject } from "../../admin/schemas.ts";

// OpenAPI response entries, so each route lists what it may answer.

export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { "application/json": { schema } },
  description,
});

const error = (description: string) => json(errorObject, description);

export const errorResponses = {
  400: error("validation_error: a field is missing or wrong (the message names it)"),
  401: error("unauthorized: no or wrong admin credentials"),
  403: error("csrf_failed: a session request without its X-CSRF-Token, or from another origin"),
  429: error("too_many_attempts: too many failed attempts from this address (see Retry-After)"),
  503: error("storage_unavailable: the database cannot be reached"),
} as const;

export const notFoundResponse = { 404: error("not_found: no key with that id") } as const;

export const security: Array<Record<string, string[]>> = [{ bearer: [] }, { session: [] }];

export const conflictResponse = (why: string) => ({ 409: error(`conflict: ${why}`) }) as const;
