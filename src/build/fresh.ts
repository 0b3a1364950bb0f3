import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

// Whether the build in dist/ was made from the sources as they are now. Kept
// free of every library: the CLI's launcher (src/cli/main.ts) asks it before
// anything else is loaded.

/** What the build writes beside its code: the sources it was made from, and its files. */
export interface BuildStamp {
  sources: string;
  /** The CLI's entry, a file of the build. */
  entry: string;
  /** Every file the build wrote, by name: all must be there for it to run. */
  files: string[];
}

export const BUILD_DIR = "dist";
export const STAMP_FILE = "build.json";
export const BUILD_ENTRY = "run.js";

/**
 * The files whose change calls for a new build: every source but the tests
 * (which the build leaves out), the dependencies' manifests and the
 * compiler's settings, which the bundler reads too.
 */
function inputs(root: string): string[] {
  const files = readdirSync(join(root, "src"), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && !entry.name.endsWith(".test.ts"))
    .map((entry) => join(entry.parentPath, entry.name));
  for (const file of ["package.json", "package-lock.json", "tsconfig.json"]) {
    const path = join(root, file);
    if (existsSync(path)) files.push(path);
  }
  return files;
}

/**
 * The sources as they are: each file's path and content. An edit, a
 * checkout or an upgrade changes it; times of change do not (a copy that
 * loses them leaves the build fresh, and a quick edit is never missed).
 * Reading it costs a few milliseconds, once per command.
 */
export function sourceFingerprint(root: string): string {
  const hash = createHash("sha256");
  for (const path of inputs(root).sort()) {
    hash.update(`${relative(root, path)}\0`);
    hash.update(readFileSync(path));
    hash.update("\0");
  }
  return hash.digest("hex");
}

/**
 * The build's entry when dist/ holds a whole build of these very sources;
 * null when there is none, it is unreadable or incomplete, or the sources
 * changed since.
 */
export function freshBuild(root: string): string | null {
  try {
    const dir = join(root, BUILD_DIR);
    const stamp = JSON.parse(readFileSync(join(dir, STAMP_FILE), "utf8")) as Partial<BuildStamp>;
    if (stamp.entry !== BUILD_ENTRY || typeof stamp.sources !== "string") return null;
    if (!Array.isArray(stamp.files) || !stamp.files.includes(BUILD_ENTRY)) return null;
    for (const file of stamp.files) {
      if (typeof file !== "string" || file.includes("/") || !existsSync(join(dir, file))) {
        return null;
      }
    }
    if (stamp.sources !== sourceFingerprint(root)) return null;
    return join(dir, BUILD_ENTRY);
  } catch {
    return null;
  }
}
