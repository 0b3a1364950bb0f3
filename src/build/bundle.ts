import { mkdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { PACKAGE_ROOT } from "../package-root.ts";
import { BUILD_DIR, BUILD_ENTRY, type BuildStamp, STAMP_FILE, sourceFingerprint } from "./fresh.ts";

/**
 * `npm run build`, also run by every `npm install` (`prepare`): the CLI and
 * the server, with the libraries they use, as one build in dist/. A gateway
 * started from it loads a few dozen files instead of some 400 modules,
 * each of which costs the runtime memory of its own: about 5 MiB less when
 * idle, 2 to 16 MiB less at its peak (README, Benchmark). The launcher
 * (src/cli/main.ts) runs it only while it matches the sources; otherwise
 * the sources run, as they are.
 *
 * The scheduled backup's worker is built too (`worker-entry.js`, see
 * src/ops/backup/worker.ts). Migrations and the web pages' files stay
 * outside the build and are read from the package (src/package-root.ts).
 */
export async function buildBundle(root: string): Promise<string> {
  const out = join(root, BUILD_DIR);
  const lock = `${out}.lock`;
  takeLock(lock);
  try {
    // Taken first: a source changed during the build leaves it stale, not wrong.
    const sources = sourceFingerprint(root);
    const next = `${out}.next`;
    const old = `${out}.old`;
    // What a build killed half-way left behind.
    rmSync(next, { recursive: true, force: true });
    rmSync(old, { recursive: true, force: true });
    try {
      const files = await bundle(root, next);
      const stamp: BuildStamp = { sources, entry: BUILD_ENTRY, files };
      writeFileSync(join(next, STAMP_FILE), `${JSON.stringify(stamp)}\n`);
    } catch (err) {
      rmSync(next, { recursive: true, force: true });
      throw err;
    }
    swapIn(next, out, old);
    return out;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

async function bundle(root: string, outdir: string): Promise<string[]> {
  const result = await Bun.build({
    entrypoints: [
      join(root, "src", "cli", "run.ts"),
      join(root, "src", "ops", "backup", "worker-entry.ts"),
    ],
    outdir,
    target: "bun",
    // Each command, each storage backend and the admin API still load only when used.
    splitting: true,
    // Every file in one folder: src/package-root.ts finds the package one level up.
    naming: { entry: "[name].[ext]", chunk: "[name]-[hash].[ext]" },
    minify: { whitespace: true, syntax: true, identifiers: false },
    // Stack traces name the sources' files and lines, not the build's.
    sourcemap: "linked",
    throw: false,
  });
  if (!result.success) throw new BuildFailed(result.logs.map(describe));
  return result.outputs.map((o) => basename(o.path));
}

/**
 * The new build replaces the old one whole, or not at all: if it cannot
 * take its place, the old one goes back where it was.
 */
function swapIn(next: string, out: string, old: string): void {
  let moved = false;
  try {
    renameSync(out, old);
    moved = true;
  } catch (err) {
    if ((err as { code?: unknown }).code !== "ENOENT") throw err;
  }
  try {
    renameSync(next, out);
  } catch (err) {
    if (moved) renameSync(old, out);
    throw err;
  }
  try {
    rmSync(old, { recursive: true, force: true });
  } catch {
    // Left for the next build to clear: the new one is in place.
  }
}

/** How old another build's lock may be before it is taken as left by a build that died. */
const STALE_LOCK_MS = 120_000;

/** One build at a time (`npm run build` beside an install's `prepare`, say). */
function takeLock(lock: string): void {
  try {
    mkdirSync(lock);
    return;
  } catch (err) {
    if ((err as { code?: unknown }).code !== "EEXIST") throw err;
  }
  if (Date.now() - statSync(lock).mtimeMs < STALE_LOCK_MS) {
    throw new Error(
      `another build is under way (${lock} exists); wait for it, or remove that folder if none is`,
    );
  }
  rmSync(lock, { recursive: true, force: true });
  mkdirSync(lock);
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
