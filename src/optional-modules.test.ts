import { describe, expect, test } from "bun:test";
import { join } from "node:path";

// A gateway without the admin API or scheduled backups does not carry their
// code: a static import of either from the server's path would quietly undo
// that, so the modules a fresh process loads are checked here.

const ADMIN_ROUTES = "/src/http/admin/routes.ts";
const BACKUP_SCHEDULER = "/src/ops/backup/scheduler.ts";

/** The modules a fresh process has loaded after building the app with `env` and importing the server. */
function loadedModules(env: Record<string, string>): string[] {
  const script = `
    const { makeTestApp } = await import(${JSON.stringify(join(import.meta.dir, "../test/harness/app.ts"))});
    const t = await makeTestApp(${JSON.stringify(env)});
    await import(${JSON.stringify(join(import.meta.dir, "server.ts"))});
    console.log(JSON.stringify(Object.keys(require.cache)));
    await t.cleanup();
  `;
  const proc = Bun.spawnSync([process.execPath, "-e", script], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" },
  });
  expect(proc.exitCode).toBe(0);
  return JSON.parse(proc.stdout.toString()) as string[];
}

const has = (modules: string[], path: string) => modules.some((m) => m.endsWith(path));

describe("optional parts are loaded only when configured", () => {
  test("without ADMIN_API_KEY and BACKUP_ENABLED: neither the admin API nor the backup scheduler", () => {
    const modules = loadedModules({});
    expect(has(modules, "/src/app.ts")).toBe(true);
    expect(has(modules, ADMIN_ROUTES)).toBe(false);
    expect(has(modules, BACKUP_SCHEDULER)).toBe(false);
  });

  test("with ADMIN_API_KEY: the admin API", () => {
    const modules = loadedModules({ ADMIN_API_KEY: "admin-key-for-the-module-test-0123456789" });
    expect(has(modules, ADMIN_ROUTES)).toBe(true);
  });

  test("the metrics are the gateway's own: no metrics library is loaded to serve", () => {
    const modules = loadedModules({});
    expect(has(modules, "/src/metrics/exposition.ts")).toBe(true);
    expect(modules.filter((m) => m.includes("/node_modules/prom-client/"))).toEqual([]);
    expect(modules.filter((m) => m.includes("/node_modules/@opentelemetry/"))).toEqual([]);
  });
});
