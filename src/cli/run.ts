#!/usr/bin/env bun
import { CommanderError } from "commander";
import { buildProgram } from "./program.ts";
import { commandsFor } from "./registry.ts";

// What Tollgate writes (database, journal, backups) is its user's alone,
// whatever the shell's umask; the places that create files also say so.
process.umask(0o077);

const args = process.argv.slice(2);

/**
 * Whatever reads a command's output closed it before everything was written
 * (`tollgate keys list | head -1`, or a reader that failed): one line, not
 * the runtime's trace. Not quietly: what was cut off may be all there was of
 * it, such as a new key's secret, which is never shown again. The server is
 * left out: its output is its log, whose writer (src/log.ts) drops lines
 * once their reader is gone and keeps serving.
 */
if (args[0] !== "serve") {
  process.stdout.on("error", (err) => {
    if ((err as { code?: unknown }).code !== "EPIPE") throw err;
    process.stderr.write(
      "error: the output was cut off: whatever read it closed it early (broken pipe); what the command did before that stands\n",
    );
    process.exit(1);
  });
}

try {
  // Only the command being run is loaded (registry.ts).
  const program = buildProgram(await commandsFor(args));
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version end here too, with code 0.
    process.exit(err.exitCode);
  }
  const { isUserError } = await import("./context.ts");
  if (isUserError(err)) {
    process.stderr.write(`error: ${err.message}\n`);
    process.exit(1);
  }
  const e = err instanceof Error ? err : new Error(String(err));
  if (process.env.LOG_LEVEL === "debug") process.stderr.write(`${e.stack}\n`);
  process.stderr.write(`error: ${e.message}\n`);
  process.exit(1);
}
