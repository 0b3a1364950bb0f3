import { expect, test } from "bun:test";
import type { Bucket } from "../time/buckets.ts";
import { InFlight } from "./in-flight.ts";
import { type AdmissionPolicy, KeyAdmissions } from "./key-admission.ts";

const NOW = Date.parse("2026-09-29T14:00:00Z");
const policy: AdmissionPolicy = {
  outputCapPolicy: "refuse",
  defaultOutputReservation: 100,
  defaultKeyConcurrency: null,
};
const key = (o: Partial<{ tokenLimit: number; maxConcurrent: number | null }> = {}) => ({
  id: "k1",
  tokenLimit: o.tokenLimit ?? 1_000,
  weeklyLimit: null,
  maxConcurrent: o.maxConcurrent ?? null,
});
const ask = (input = 10, named: number | null = null) => ({
  now: NOW,
  input,
  output: { named, answers: 1 },
  weights: undefined,
});

/** A usage view that answers with `used` tokens in the current bucket, and can run code mid-read. */
function usage(used: number, duringRead?: () => void) {
  return {
    buckets: async (): Promise<Bucket[]> => {
      duringRead?.();
      return used > 0 ? [{ bucketStart: NOW - 60_000, tokens: used }] : [];
    },
  };
}

test("admitted: the request holds its input and default output until it settles", async () => {
  const flight = new InFlight();
  const a = await new KeyAdmissions(usage(0), flight, policy).admit(key(), ask(10));
  expect(a.ok).toBe(true);
  expect(flight.reserved("k1")).toBe(110);
  expect(flight.count("k1")).toBe(1);
  if (a.ok) a.ticket.settle(42);
  expect(flight.reserved("k1")).toBe(0);
  expect(flight.count("k1")).toBe(0);
});

test("a key at its limit of requests in flight is refused before its quota is looked at", async () => {
  const flight = new InFlight();
  const admissions = new KeyAdmissions(usage(999_999), flight, policy);
  flight.enter("k1", 0);
  const a = await admissions.admit(key({ maxConcurrent: 1 }), ask());
  expect(a).toEqual({ ok: false, reason: "concurrency", limit: 1 });
  expect(flight.count("k1")).toBe(1);
});

test("the gateway's default concurrency applies to a key without its own", async () => {
  const flight = new InFlight();
  flight.enter("k1", 0);
  flight.enter("k1", 0);
  const admissions = new KeyAdmissions(usage(0), flight, { ...policy, defaultKeyConcurrency: 2 });
  expect(await admissions.admit(key(), ask())).toMatchObject({ ok: false, limit: 2 });
});

test("a spent window is a quota refusal and reserves nothing", async () => {
  const flight = new InFlight();
  const a = await new KeyAdmissions(usage(1_000), flight, policy).admit(key(), ask());
  expect(a.ok).toBe(false);
  expect(!a.ok && a.reason === "quota" && a.refusal.reason).toBe("spent");
  expect(flight.count("k1")).toBe(0);
  expect(flight.reserved("k1")).toBe(0);
});

test("what other requests reserve counts: the rest is refused as reserved", async () => {
  const flight = new InFlight();
  flight.enter("k1", 950);
  const a = await new KeyAdmissions(usage(50), flight, policy).admit(key(), ask());
  expect(!a.ok && a.reason === "quota" && a.refusal.reason).toBe("reserved");
});

test("a charge settled while the usage was being read still counts against the window", async () => {
  // The read may have missed a charge that landed just as its reservation
  // was released: it is counted from the in-flight tally instead.
  const flight = new InFlight();
  const other = flight.enter("k1", 0);
  const admissions = new KeyAdmissions(
    usage(0, () => other.settle(950)),
    flight,
    policy,
  );
  const a = await admissions.admit(key(), ask(10, 100));
  expect(!a.ok && a.reason === "quota" && a.refusal.reason).toBe("cap");
});
