import { expect, test } from "bun:test";
import { TimeoutError, withTimeout } from "./timeout.ts";

test("settles as the work does when it answers in time", async () => {
  expect(await withTimeout(Promise.resolve(7), 50)).toBe(7);
  const err = new Error("refused");
  expect(withTimeout(Promise.reject(err), 50)).rejects.toBe(err);
});

test("rejects with a TimeoutError once the time runs out; a late failure is handled", async () => {
  let fail: (e: Error) => void = () => {};
  const hung = new Promise<number>((_, reject) => {
    fail = reject;
  });
  const started = performance.now();
  const out = await withTimeout(hung, 20, "no answer from the database within 20 ms").catch(
    (e: unknown) => e,
  );
  expect(out).toBeInstanceOf(TimeoutError);
  expect((out as Error).message).toBe("no answer from the database within 20 ms");
  expect(performance.now() - started).toBeGreaterThanOrEqual(15);
  fail(new Error("too late")); // no unhandled rejection
  await Bun.sleep(1);
});
