/**
 * What a PostgreSQL suite does when the PostgreSQL it needs is not there.
 * Without it the suite is skipped with a loud line, so `npm test` passes on a
 * machine with only Node and npm. CI (.ci/run) installs PostgreSQL and sets
 * REQUIRE_POSTGRES=1: then the same suite fails, saying why, so CI can never
 * go green with the PostgreSQL tests skipped or run on PGlite instead.
 *
 *   describeNeedingPostgres("two instances", pg.shared ? undefined : NEEDS_SERVER, () => { … });
 */

import { describe, test } from "bun:test";

/** Set by CI: every PostgreSQL test must run on a real server. */
export const postgresRequired = (): boolean => process.env.REQUIRE_POSTGRES === "1";

/** Why a suite needing a server several processes can reach cannot run here. */
export const NEEDS_SERVER =
  "it needs a PostgreSQL server several connections and processes can reach (PGlite serves one); set TEST_DATABASE_URL";

/**
 * Throws under REQUIRE_POSTGRES=1; otherwise prints a loud line. For a
 * fallback (PGlite) taken for want of a server.
 */
export function fallingBack(what: string, reason: string): void {
  if (postgresRequired()) {
    throw new Error(`REQUIRE_POSTGRES=1 but ${what} would fall back: ${reason}`);
  }
  process.stderr.write(`\n*** ${what}: ${reason} ***\n`);
}

/**
 * `describe` when `missing` is undefined. Otherwise `describe.skip` with a
 * loud line, or, under REQUIRE_POSTGRES=1, a suite whose one test fails
 * saying why.
 */
export function describeNeedingPostgres(
  name: string,
  missing: string | undefined,
  body: () => void,
): void {
  if (missing === undefined) {
    describe(name, body);
    return;
  }
  if (postgresRequired()) {
    const reason = `REQUIRE_POSTGRES=1 but "${name}" cannot run: ${missing}`;
    process.stderr.write(`\n*** FAILING: ${reason} ***\n`);
    describe(name, () => {
      test("PostgreSQL is there (REQUIRE_POSTGRES=1)", () => {
        throw new Error(reason);
      });
    });
    return;
  }
  process.stderr.write(`\n*** SKIPPING PostgreSQL tests "${name}": ${missing} ***\n`);
  describe.skip(name, body);
}

/** The same for one test. */
export function testNeedingPostgres(
  name: string,
  missing: string | undefined,
  fn: () => Promise<void>,
  timeoutMs?: number,
): void {
  describeNeedingPostgres(name, missing, () => {
    test(name, fn, timeoutMs);
  });
}
