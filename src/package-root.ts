import { join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The package's own folder, whatever the working directory: the files read
 * at run time (migrations, the web pages, the backup worker) are found from
 * here. This file sits one level below it both as written (`src/`) and once
 * built (`dist/`, see src/build/bundle.ts), so the same line serves both.
 */
export const PACKAGE_ROOT = fileURLToPath(new URL("..", import.meta.url));

/** A file or folder of the package, by its path from the package's folder. */
export function packagePath(...parts: string[]): string {
  return join(PACKAGE_ROOT, ...parts);
}

/** Where this code runs from: its build (`dist/`, one file per chunk of modules) or the sources. */
export const RUNNING_FROM: "build" | "sources" = import.meta.url.endsWith(".ts")
  ? "sources"
  : "build";
