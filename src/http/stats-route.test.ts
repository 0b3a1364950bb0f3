import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { makeTestApp } from "../../test/harness/app.ts";

let t: Awaited<ReturnType<typeof makeTestApp>>;

beforeEach(async () => {
  t = await makeTestApp();
});
afterEach(async () => {
  await t.cleanup();
});

const stats = async (secret: string) => {
  const res = await t.app.request("/stats", { headers: { authorization: `Bearer ${secret}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as { total_lifetime_tokens: number; total_requests: number };
};

describe("GET /stats from memory (the database too slow to answer)", () => {
  test("counts what this instance wrote to the database since the key was read", async () => {
    const issued = await t.newKey();
    // The key is read (and remembered) with no usage yet.
    expect(await stats(issued.secret)).toMatchObject({
      total_lifetime_tokens: 0,
      total_requests: 0,
    });

    // Two charges, written to the database: no longer pending in this instance.
    t.ledger.record(issued.record.id, 120);
    t.ledger.record(issued.record.id, 30);
    expect(await t.ledger.flush()).toBe(true);
    // One more, still pending.
    t.ledger.record(issued.record.id, 7);

    // The database stops answering reads of the key: /stats answers from
    // memory after its bound, and must still count all three.
    t.storage.getKeyById = () => new Promise(() => {});
    expect(await stats(issued.secret)).toMatchObject({
      total_lifetime_tokens: 157,
      total_requests: 3,
    });
  });
});
