import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

// Whether the build in dist/ was made from the sources as they are now. Kept
// free of every library: the CLI's launcher (src/cli/main.ts) asks it before
// anything else is loaded.

/** What the build writes beside its code: the sources it was made from. */
export interface BuildStamp {
  sources: string;
  /** The CLI's entry, a file of the build. */
  entry: string;
}

export const BUILD_DIR = "dist";
export const STAMP_FILE = "build.json";

/**
 * The files whose change calls for a new build: every source but the tests
 * (which the build leaves out), and the dependencies' manifests.
 */
function inputs(root: string): string[] {
  const files = readdirSync(join(root, "src"), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && !entry.name.endsWith(".test.ts"))
    .map((entry) => join(entry.parentPath, entry.name));
  for (const manifest of ["package.json", "package-lock.json"]) {
    const path = join(root, manifest);
    if (existsSync(path)) files.push(path);
  }
  return files;
}

/**
 * The sources as they are: each file's path, size and time of last change.
 * An edit, a checkout or an upgrade changes it; reading it costs a few
 * milliseconds, once per command.
 */
export function sourceFingerprint(root: string): string {
  const lines = inputs(root).map((path) => {
    const s = statSync(path);
    return `${relative(root, path)}\t${s.size}\t${s.mtimeMs}`;
  });
  return createHash("sha256").update(lines.sort().join("\n")).digest("hex");
}

/**
 * The build's entry when dist/ holds a build of these very sources; null
 * when there is none, it is unreadable or the sources changed since.
 */
export function freshBuild(root: string): string | null {
  try {
    const dir = join(root, BUILD_DIR);
    const stamp = JSON.parse(readFileSync(join(dir, STAMP_FILE), "utf8")) as Partial<BuildStamp>;
    if (typeof stamp.sources !== "string" || typeof stamp.entry !== "string") return null;
    const entry = join(dir, stamp.entry);
    if (!existsSync(entry) || stamp.sources !== sourceFingerprint(root)) return null;
    return entry;
  } catch {
    return null;
  }
}
