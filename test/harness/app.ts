import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { claimInstance } from "../../src/accounting/instance.ts";
import { Journal } from "../../src/accounting/journal.ts";
import { UsageLedger } from "../../src/accounting/ledger.ts";
import { planState } from "../../src/admin/plan.ts";
import { createApp } from "../../src/app.ts";
import { type Config, loadConfig } from "../../src/config.ts";
import { defaultKeyCacheOptions, KeyCache } from "../../src/keys/cache.ts";
import { type CreateKeyInput, createKey } from "../../src/keys/service.ts";
import { silentLogger } from "../../src/log.ts";
import { createMetrics } from "../../src/metrics/registry.ts";
import { UsageView } from "../../src/quota/usage-view.ts";
import { StorageHealth } from "../../src/storage/health.ts";
import { openSqliteStorage } from "../../src/storage/sqlite/index.ts";
import { MOCK_CONTROL_HEADERS } from "./mock-upstream.ts";

/**
 * The app wired as the server wires it (real SQLite file, real journal), for
 * in-process route tests with `app.request()`. The clock is a variable the
 * test can move.
 */
export async function makeTestApp(env: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-app-"));
  const config: Config = loadConfig({
    DATABASE_PATH: join(dir, "tollgate.db"),
    UPSTREAM_API_KEY: "master-key-for-tests",
    EXTRA_REQUEST_HEADERS: MOCK_CONTROL_HEADERS,
    ...env,
  });
  const time = { now: Date.now() };
  const clock = () => time.now;
  const storage = openSqliteStorage(join(dir, "tollgate.db"));
  await storage.migrate();
  const instance = claimInstance(config.journalDir);
  let usage: UsageView | undefined;
  const ledger = await UsageLedger.open({
    storage,
    journal: Journal.open(config.journalDir, instance.id),
    instanceId: instance.id,
    clock,
    log: silentLogger(),
    onFlushed: (keys, n) => usage?.onFlushed(keys, n),
  });
  const health = new StorageHealth(storage, silentLogger(), {
    probeMs: 60_000,
    backoffMs: 50,
    maxBackoffMs: 200,
    pingTimeoutMs: 1000,
  });
  usage = new UsageView(storage, ledger, clock, 1000, health);
  let keysRef: KeyCache | undefined;
  const metrics = createMetrics({
    backlog: () => ledger.backlog,
    storageUp: () => (health.degraded ? 0 : 1),
    keysInMemory: () => keysRef?.knownKeys ?? 0,
    storageInflight: () => 0,
    plan: () => planState(storage, clock(), config.plan),
    poolMax: 1,
  });
  const keys = new KeyCache(storage, clock, defaultKeyCacheOptions, health, (result) =>
    metrics.keyCache.inc({ result }),
  );
  keysRef = keys;
  const app = createApp({
    config,
    storage,
    keys,
    usage,
    ledger,
    clock,
    log: silentLogger(),
    health,
    metrics,
    accepting: () => true,
  });
  return {
    app,
    config,
    storage,
    ledger,
    time,
    newKey: (input: Partial<CreateKeyInput> = {}) =>
      createKey(storage, { name: "test", tokenLimit: 1_000_000, ...input }, time.now),
    health,
    async cleanup() {
      health.stop();
      await ledger.close();
      await storage.close();
      instance.release();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
