import { expect, test } from "bun:test";
import { snakeCaseKeys } from "./output.ts";

test("snakeCaseKeys renames fields at every depth and leaves values and snake_case alone", () => {
  expect(
    snakeCaseKeys({
      createdAt: "2026-01-01T00:00:00.000Z",
      counts: { usageBuckets: 2, lifetimeTokens: 10, keys: 1 },
      schema: { latestAt: null, latest: "0001_x" },
      token_limit_per_5h: 5,
      list: [{ fromBackup: 1, name: "camelCase value" }],
    }),
  ).toEqual({
    created_at: "2026-01-01T00:00:00.000Z",
    counts: { usage_buckets: 2, lifetime_tokens: 10, keys: 1 },
    schema: { latest_at: null, latest: "0001_x" },
    token_limit_per_5h: 5,
    list: [{ from_backup: 1, name: "camelCase value" }],
  });
});
