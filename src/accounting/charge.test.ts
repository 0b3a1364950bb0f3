import { expect, test } from "bun:test";
import { ModelTable } from "../models/cost.ts";
import { parseModelsFile } from "../models/load.ts";
import { estimatedUsage, type TokenUsage } from "../models/token-usage.ts";
import { openCharge } from "./charge.ts";
import type { UsageLedger } from "./ledger.ts";

/** A ledger that keeps what is recorded and the shutdown holds. */
function fakeLedger() {
  const recorded: { keyId: string; units: number; model?: string }[] = [];
  const holds = new Set<{ force: () => void }>();
  const ledger = {
    record: (keyId: string, units: number, _requests: number, detail?: { model: string }) =>
      recorded.push({ keyId, units, model: detail?.model }),
    hold: (force: () => void) => {
      const h = { force };
      holds.add(h);
      return () => holds.delete(h);
    },
  } as unknown as UsageLedger;
  const shutdown = () => {
    for (const h of holds) h.force();
  };
  return { ledger, recorded, holds, shutdown };
}

const usage = (input: number, output: number): TokenUsage => ({
  input,
  output,
  cacheRead: 0,
  cacheWrite: 0,
});

function open(model: string | undefined, models = ModelTable.flat) {
  const f = fakeLedger();
  const settled: number[] = [];
  const bill = openCharge(
    { ledger: f.ledger, models, clock: () => 0 },
    { keyId: "k", model, settle: (u) => settled.push(u), estimate: () => estimatedUsage(7) },
  );
  return { ...f, bill, settled };
}

test("charged once, in weighted units; the reservation settles with the same units", () => {
  const models = parseModelsFile("m.yaml", "models:\n  - match: dear\n    multiplier: 3\n");
  const r = open("dear", models);
  expect(r.bill.charge(usage(10, 5))).toBe(true);
  expect(r.bill.charge(usage(10, 5))).toBe(false);
  expect(r.recorded).toEqual([{ keyId: "k", units: 45, model: "dear" }]);
  expect(r.settled).toEqual([45]);
  expect(r.bill.units).toBe(45);
});

test("shutdown before the answer streams charges the estimate; after close it charges nothing", () => {
  const cut = open("m");
  cut.shutdown();
  expect(cut.recorded).toEqual([{ keyId: "k", units: 7, model: "m" }]);
  // Charged already: a later answer adds nothing.
  expect(cut.bill.charge(usage(100, 100))).toBe(false);

  const done = open("m");
  done.bill.charge(usage(1, 1));
  done.bill.close();
  expect(done.holds.size).toBe(0);
  done.shutdown();
  expect(done.recorded).toHaveLength(1);
});

test("once streaming, shutdown asks the stream to charge what it knows", () => {
  const r = open(undefined);
  let forced = 0;
  r.bill.forceWith(() => {
    forced++;
    r.bill.charge(usage(3, 2));
  });
  r.shutdown();
  expect(forced).toBe(1);
  // No model named: charged, without a per-model detail.
  expect(r.recorded).toEqual([{ keyId: "k", units: 5, model: undefined }]);
});
