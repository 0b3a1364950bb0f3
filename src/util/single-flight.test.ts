import { expect, test } from "bun:test";
import { SingleFlight } from "./single-flight.ts";

test("callers during a run join it; after it settles, the next call runs afresh", async () => {
  const flight = new SingleFlight<number>();
  let starts = 0;
  let finish: (n: number) => void = () => {};
  const work = () => {
    starts++;
    return new Promise<number>((resolve) => {
      finish = resolve;
    });
  };
  const a = flight.run(work);
  const b = flight.run(work);
  expect(starts).toBe(1);
  expect(flight.running).toBe(a);
  finish(7);
  expect(await a).toBe(7);
  expect(await b).toBe(7);
  expect(flight.running).toBeUndefined();
  const c = flight.run(work);
  expect(starts).toBe(2);
  finish(8);
  expect(await c).toBe(8);
});

test("a failed run is shared by its joiners and does not stick", async () => {
  const flight = new SingleFlight<number>();
  let fail = true;
  const work = async () => {
    await Bun.sleep(1);
    if (fail) throw new Error("down");
    return 1;
  };
  const a = flight.run(work);
  const b = flight.run(work);
  await expect(a).rejects.toThrow("down");
  await expect(b).rejects.toThrow("down");
  fail = false;
  expect(await flight.run(work)).toBe(1);
});
