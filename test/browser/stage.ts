/**
 * What every browser suite runs against, for the whole file: a mock upstream,
 * a real gateway process with the admin API on, and one Chromium. Call
 * `useStage` inside `describeInBrowser`, so nothing starts when the suite is
 * skipped.
 *
 *   let gw: GatewayProcess; let browser: Browser;
 *   describeInBrowser("…", () => {
 *     useStage((s) => ({ gw, browser } = s));
 *     …tests…
 *     secretSweep(() => gw);
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Browser } from "playwright-core";
import {
  expectNoSecretsInLogs,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  startGateway,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";
import { BROWSER_HOOK_TIMEOUT_MS, launchBrowser } from "./browser.ts";
import { ADMIN_KEY } from "./seed.ts";

export interface Stage {
  mock: MockUpstream;
  gw: GatewayProcess;
  browser: Browser;
}

/** Starts the stage before the suite's tests, hands it to `ready`, and stops it after them. */
export function useStage(ready: (stage: Stage) => void): void {
  let stage: Partial<Stage> = {};
  beforeAll(async () => {
    stage.mock = await startMockUpstream();
    stage.gw = await startGateway({
      mock: stage.mock,
      env: { ADMIN_API_KEY: ADMIN_KEY, UPSTREAM_PLAN_5H: "4000" },
    });
    stage.browser = await launchBrowser();
    ready(stage as Stage);
  }, BROWSER_HOOK_TIMEOUT_MS);

  afterAll(async () => {
    await stage.browser?.close();
    await stage.gw?.close();
    await stage.mock?.stop();
    stage = {};
  }, HOOK_TIMEOUT_MS);
}

/**
 * A suite's last test: its gateway's log is non-empty and holds neither the
 * admin key, the master key nor any key created or shown in the suite
 * (through the CLI, the admin API or the dashboard), like every end-to-end
 * suite's sweep.
 */
export function secretSweep(gateway: () => GatewayProcess | undefined): void {
  test("the secret sweep: the gateway's log is non-empty and holds no admin, master or client key", () => {
    const gw = gateway();
    expect(gw?.started).toBe(true);
    expect((gw?.stdout ?? "").trim().length).toBeGreaterThan(0);
    // The master key, the admin key and at least one key the suite made.
    expect(gw?.secretsToSweep().length ?? 0).toBeGreaterThanOrEqual(3);
    expect(expectNoSecretsInLogs()).toBeGreaterThan(0);
  });
}
