/**
 * Preloaded for every test file (bunfig.toml): a test that makes no
 * assertion fails ("received 0 assertions"), so a test whose checks were
 * lost in an edit, or that never reached them, cannot pass silently. A test
 * that only needs to show something does not throw still says so:
 * `await expect(p).resolves.toBeUndefined()`.
 */
import { beforeEach, expect } from "bun:test";

beforeEach(() => {
  expect.hasAssertions();
});
