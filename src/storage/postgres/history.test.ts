import { expect, test } from "bun:test";
import type { Sql } from "./database.ts";
import { usageSinceMany } from "./history.ts";

test("usageSinceMany sends its 500-id chunks one after another, not all at once", async () => {
  let inFlight = 0;
  let most = 0;
  const chunks: number[] = [];
  const client = (async (_text: TemplateStringsArray, ids: string[]) => {
    chunks.push(ids.length);
    most = Math.max(most, ++inFlight);
    await Bun.sleep(1);
    inFlight--;
    return ids.map((id) => ({ key_id: id, bucket_start: "300000", tokens: "7", requests: "1" }));
  }) as unknown as Sql;
  const ids = Array.from({ length: 1200 }, (_, i) => `k${i}`);
  const out = await usageSinceMany(client, ids, 0);
  expect(chunks).toEqual([500, 500, 200]);
  expect(most).toBe(1);
  expect(out.size).toBe(1200);
  expect(out.get("k1199")).toEqual([{ bucketStart: 300_000, tokens: 7, requests: 1 }]);
});
