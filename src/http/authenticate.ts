import { GatewayError } from "../errors.ts";
import type { KeyCache } from "../keys/cache.ts";
import { isPlausibleKey } from "../keys/secret.ts";
import type { KeyRecord } from "../storage/types.ts";
import { presentedKey } from "./credentials.ts";
import type { FailedKeyLimiter } from "./failed-keys.ts";

export interface AuthOptions {
  /** `/stats` still answers for an expired or disabled key: its holder may look. */
  allowInactive?: boolean;
  /**
   * Failed attempts counted and limited per client address (the API routes).
   * The address is worked out only when needed: a known key never needs it.
   */
  failures?: { limiter: FailedKeyLimiter; address: () => string };
}

/** The key record behind a request, or the 401/403 that explains why not. */
export async function authenticate(
  keys: KeyCache,
  req: Request,
  url: URL,
  now: number,
  options: AuthOptions = {},
): Promise<KeyRecord> {
  const secret = presentedKey(req, url);
  if (!secret) {
    throw new GatewayError(
      "missing_api_key",
      "missing API key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
    );
  }
  const failures = options.failures;
  if (!isPlausibleKey(secret)) {
    failures?.limiter.fail(failures.address(), "malformed", now);
    throw new GatewayError("invalid_api_key", "invalid API key");
  }
  // Keys this instance knows are never held up; only unseen ones are rationed.
  const rationUnknown = failures
    ? () => {
        const waitMs = failures.limiter.mayLookUp(failures.address(), now);
        if (waitMs > 0) throw tooManyFailures(waitMs);
      }
    : undefined;
  const key = await lookup(keys, secret, rationUnknown);
  if (!key) {
    failures?.limiter.fail(failures.address(), "unknown", now);
    throw new GatewayError("invalid_api_key", "invalid API key");
  }
  if (options.allowInactive) return key;
  if (key.disabled) throw new GatewayError("key_disabled", "this API key has been disabled");
  if (key.expiresAt !== null && key.expiresAt <= now) {
    throw new GatewayError(
      "key_expired",
      `this API key expired at ${new Date(key.expiresAt).toISOString()}`,
    );
  }
  return key;
}

async function lookup(
  keys: KeyCache,
  secret: string,
  onUnknown: (() => void) | undefined,
): Promise<KeyRecord | null> {
  try {
    return await keys.lookup(secret, onUnknown);
  } catch (err) {
    // The rationing's own refusal passes through; anything else is the storage.
    if (err instanceof GatewayError) throw err;
    throw new GatewayError("storage_unavailable", "key storage is unavailable; try again shortly");
  }
}

function tooManyFailures(waitMs: number): GatewayError {
  return new GatewayError(
    "too_many_failed_keys",
    "too many requests with invalid API keys from this address; keys already in use here still work",
    { "retry-after": String(Math.ceil(waitMs / 1000)) },
  );
}
