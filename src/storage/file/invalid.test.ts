import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hashKey } from "../../keys/secret.ts";
import { createKey } from "../../keys/service.ts";
import { KeyFileError, openFileStorage } from "./index.ts";

// A corrupt or invalid file stops the backend with a message that names the
// file and the first problem, and the file is left exactly as it was.

const SECRET_A = "sk-very-secret-alice-key-0001";
const SECRET_B = "sk-very-secret-bob-key-0002";

const entry = (key: string, name: string, extra: Record<string, unknown> = {}) => ({
  key,
  name,
  token_limit_per_5h: 1000,
  expiry_date: "2030-01-01T00:00:00.000Z",
  created_at: "2025-01-01T00:00:00.000Z",
  last_used: null,
  total_lifetime_tokens: 5,
  usage_windows: [],
  ...extra,
});
const valid = JSON.stringify({ keys: [entry(SECRET_A, "alice"), entry(SECRET_B, "bob")] }, null, 2);
const withBob = (extra: Record<string, unknown>) =>
  JSON.stringify({ keys: [entry(SECRET_A, "alice"), entry(SECRET_B, "bob", extra)] });

const cases: Array<[string, string, string]> = [
  ["truncated JSON", valid.slice(0, valid.length / 2), "is not valid JSON"],
  ["an empty file", "", "the file is empty"],
  ["an array instead of an object", "[]", "expected object"],
  [
    "a limit that is a string",
    withBob({ token_limit_per_5h: "lots" }),
    'keys[1] ("bob") token_limit_per_5h',
  ],
  [
    "a negative total",
    withBob({ total_lifetime_tokens: -1 }),
    'keys[1] ("bob") total_lifetime_tokens',
  ],
  ["a date that is not one", withBob({ expiry_date: "someday" }), 'keys[1] ("bob") expiry_date'],
  [
    "a bucket of the wrong shape",
    withBob({ rolling_window_cache: { buckets: [{ tokens: 1 }] } }),
    'keys[1] ("bob") rolling_window_cache.buckets.0.timestamp',
  ],
  ["an entry with no key at all", withBob({ key: undefined }), 'keys[1] ("bob"): has neither'],
  [
    "a key listed twice",
    withBob({ key: SECRET_A }),
    'keys[1] ("bob") has the same key as keys[0] ("alice")',
  ],
  [
    "a bad checkpoint",
    JSON.stringify({ keys: [], tollgate_checkpoints: { a: "x" } }),
    "tollgate_checkpoints.a",
  ],
];

describe("file storage: an invalid file", () => {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-invalid-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  for (const [i, [what, text, expected]] of cases.entries()) {
    test(`${what}: a clear error, and the file is left byte for byte`, async () => {
      const path = join(dir, `apikeys-${i}.json`);
      writeFileSync(path, text);
      const s = openFileStorage(path);
      const err = await s.migrate().then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(KeyFileError);
      const message = (err as Error).message;
      expect(message).toContain(path);
      expect(message).toContain(expected);
      for (const secret of [SECRET_A, SECRET_B]) expect(message).not.toContain(secret);

      // Reads and every kind of write refuse the file too; none of them touches it.
      await expect(s.getKeyByHash(hashKey(SECRET_A))).rejects.toBeInstanceOf(KeyFileError);
      await expect(createKey(s, { name: "new", tokenLimit: 1 }, 0)).rejects.toThrow(path);
      await expect(
        s.applyUsage({ instanceId: "i", firstSeq: 1, lastSeq: 1, keys: [] }),
      ).rejects.toBeInstanceOf(KeyFileError);
      await expect(s.deleteKey("legacy_x")).rejects.toBeInstanceOf(KeyFileError);
      await s.close();
      expect(readFileSync(path, "utf8")).toBe(text);
      expect(existsSync(`${path}.lock`)).toBe(false);
    });
  }

  test("the valid original of these cases is accepted", async () => {
    const path = join(dir, "apikeys-valid.json");
    writeFileSync(path, valid);
    const s = openFileStorage(path);
    await s.migrate();
    expect(await s.countKeys()).toBe(2);
  });
});
