import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../../src/app.ts";
import { type Config, loadConfig } from "../../src/config.ts";
import { type CreateKeyInput, createKey } from "../../src/keys/service.ts";
import { silentLogger } from "../../src/log.ts";
import { buildServices } from "../../src/services.ts";
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
  const opened = openSqliteStorage(join(dir, "tollgate.db"));
  await opened.migrate();
  const { storage, metrics, instance, health, ledger, usage, keys } = await buildServices(config, {
    storage: opened,
    clock,
    log: silentLogger(),
    health: { probeMs: 60_000, backoffMs: 50, maxBackoffMs: 200, pingTimeoutMs: 1000 },
    usageRefreshMs: 1000,
  });
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
