import { renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../package-root.ts";
import { BUILD_DIR, type BuildStamp, STAMP_FILE, sourceFingerprint } from "./fresh.ts";

/**
 * `npm run build`, also run by every `npm install` (`prepare`): the CLI and
 * the server, with the libraries they use, as one build in dist/. A gateway
 * started from it loads a few dozen files instead of some 400 modules,
 * each of which costs the runtime memory of its own: about 5 MiB less when
 * idle, 2 to 16 MiB less at its peak (README, Benchmark). The launcher
 * (src/cli/main.ts) runs it only while it matches the sources; otherwise
 * the sources run, as they are.
 *
 * Worker code, migrations and the web pages' files stay outside the build
 * and are read from the package (src/package-root.ts).
 */
export async function buildBundle(root: string): Promise<string> {
  // Taken first: a source changed during the build leaves it stale, not wrong.
  const sources = sourceFingerprint(root);
  const out = join(root, BUILD_DIR);
  const next = `${out}.next-${process.pid}`;
  rmSync(next, { recursive: true, force: true });
  const result = await Bun.build({
    entrypoints: [join(root, "src", "cli", "run.ts")],
    outdir: next,
    target: "bun",
    // Each command, each storage backend and the admin API still load only when used.
    splitting: true,
    // Names are kept, for stack traces that read like the sources.
    minify: { whitespace: true, syntax: true, identifiers: false },
    throw: false,
  });
  if (!result.success) {
    rmSync(next, { recursive: true, force: true });
    throw new BuildFailed(result.logs.map(describe));
  }
  const stamp: BuildStamp = { sources, entry: "run.js" };
  writeFileSync(join(next, STAMP_FILE), `${JSON.stringify(stamp)}\n`);
  // Swapped in whole: never a build half old and half new.
  const old = `${out}.old-${process.pid}`;
  try {
    renameSync(out, old);
  } catch {
    // none yet
  }
  renameSync(next, out);
  rmSync(old, { recursive: true, force: true });
  return out;
}

export class BuildFailed extends Error {
  constructor(readonly problems: string[]) {
    super("the build failed");
  }
}

/** One problem the bundler found, where it is: `src/x.ts:3:13: Unexpected =`. */
function describe(log: BuildMessage | ResolveMessage): string {
  const at = log.position;
  return at ? `${at.file}:${at.line}:${at.column}: ${log.message}` : log.message;
}

if (import.meta.main) {
  try {
    const out = await buildBundle(PACKAGE_ROOT);
    process.stdout.write(`built ${out}\n`);
  } catch (err) {
    const problems = err instanceof BuildFailed ? err.problems : [];
    const lines = [`error: ${(err as Error).message}`, ...problems.map((p) => `  ${p}`)];
    process.stderr.write(`${lines.join("\n")}\n`);
    process.exit(1);
  }
}
