#!/usr/bin/env node
// `npx tollgate …`: runs the CLI on the Bun that `npm install` brought along,
// passing signals through so `tollgate serve` shuts down gracefully.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const bun = join(dirname(require.resolve("bun/package.json")), "bin", "bun.exe");
// The engine's heap is sized for 128 MiB of RAM unless the operator says
// otherwise: its peak stays near 100 MiB at no measured cost in CPU
// (docs/operations.md, Memory). Read by the runtime as it starts, so it is
// set here, in the server's own environment.
const env = { BUN_JSC_forceRAMSize: "134217728", ...process.env };
const child = spawn(bun, [join(here, "..", "src", "cli", "main.ts"), ...process.argv.slice(2)], {
  stdio: "inherit",
  env,
});
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => child.kill(signal));
}
child.on("exit", (code, signal) => {
  if (signal) {
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  } else process.exit(code ?? 1);
});
