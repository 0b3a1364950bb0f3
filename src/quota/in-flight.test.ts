import { expect, test } from "bun:test";
import { InFlight } from "./in-flight.ts";

test("reservations are held per key until settled or released, once", () => {
  const f = new InFlight();
  const a = f.enter("k", 100);
  const b = f.enter("k", 50);
  f.enter("other", 7);
  expect([f.count("k"), f.reserved("k")]).toEqual([2, 150]);
  const mark = f.mark("k");
  a.settle(30);
  a.settle(30);
  a.release();
  expect([f.count("k"), f.reserved("k")]).toEqual([1, 50]);
  // What was charged while a reader was away is there for it to add.
  expect(f.settledSince("k", mark)).toBe(30);
  b.release();
  expect([f.count("k"), f.reserved("k"), f.settledSince("k", mark)]).toEqual([0, 0, 30]);
  expect(f.reserved("other")).toBe(7);
});
