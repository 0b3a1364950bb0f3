import { describe, expect, test } from "bun:test";
import { silentLogger } from "../log.ts";
import { StorageHealth } from "./health.ts";
import type { Storage } from "./types.ts";

function fakeStorage() {
  const ctl = { up: true, hang: false, pings: 0 };
  const storage = {
    kind: "postgres",
    ping: async () => {
      ctl.pings++;
      if (ctl.hang) await new Promise(() => {});
      if (!ctl.up) throw new Error("ECONNREFUSED");
    },
  } as unknown as Storage;
  return { storage, ctl };
}

const options = { probeMs: 50, backoffMs: 10, maxBackoffMs: 40, pingTimeoutMs: 100 };

describe("StorageHealth", () => {
  test("a reported failure turns it degraded; it reconnects by itself and says so once", async () => {
    const { storage, ctl } = fakeStorage();
    const h = new StorageHealth(storage, silentLogger(), options);
    let recovered = 0;
    h.onRecovered(() => recovered++);
    h.start();
    ctl.up = false;
    h.reportFailure(new Error("ECONNREFUSED"));
    expect(h.degraded).toBe(true);
    expect(h.snapshot()).toMatchObject({ reachable: false, lastError: "ECONNREFUSED" });
    // It keeps trying (every 50 ms at least, with these options).
    for (let i = 0; i < 100 && ctl.pings < 3; i++) await Bun.sleep(20);
    expect(h.degraded).toBe(true);
    expect(ctl.pings).toBeGreaterThanOrEqual(3);
    ctl.up = true;
    for (let i = 0; i < 50 && h.degraded; i++) await Bun.sleep(20);
    expect(h.degraded).toBe(false);
    expect(recovered).toBe(1);
    expect(h.snapshot()).toMatchObject({ reachable: true, lastError: null, degradedSince: null });
    h.stop();
  });

  test("a database that does not answer at all counts as down after the ping timeout", async () => {
    const { storage, ctl } = fakeStorage();
    const h = new StorageHealth(storage, silentLogger(), options);
    ctl.hang = true;
    const started = performance.now();
    await h.check();
    expect(performance.now() - started).toBeLessThan(1000);
    expect(h.degraded).toBe(true);
    expect(h.snapshot().lastError).toContain("no answer within 100 ms");
    h.stop();
  });

  test("probes a healthy database periodically and notices an outage by itself", async () => {
    const { storage, ctl } = fakeStorage();
    const h = new StorageHealth(storage, silentLogger(), options);
    h.start();
    await Bun.sleep(120);
    expect(h.snapshot().latencyMs).not.toBeNull();
    ctl.up = false;
    for (let i = 0; i < 50 && !h.degraded; i++) await Bun.sleep(20);
    expect(h.degraded).toBe(true);
    h.stop();
  });
});
