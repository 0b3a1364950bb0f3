import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freshBuild, sourceFingerprint } from "./fresh.ts";

let root: string;

/** A build of the package's sources as they are: its entry, a chunk and its stamp. */
function stampedBuild(): string {
  const entry = join(root, "dist", "run.js");
  writeFileSync(entry, "// built\n");
  writeFileSync(join(root, "dist", "chunk-a.js"), "// a chunk\n");
  writeStamp({
    sources: sourceFingerprint(root),
    entry: "run.js",
    files: ["run.js", "chunk-a.js"],
  });
  return entry;
}

function writeStamp(stamp: object): void {
  writeFileSync(join(root, "dist", "build.json"), JSON.stringify(stamp));
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "tollgate-fresh-"));
  mkdirSync(join(root, "src", "cli"), { recursive: true });
  mkdirSync(join(root, "dist"));
  writeFileSync(join(root, "src", "cli", "run.ts"), "export {};\n");
  writeFileSync(join(root, "src", "app.ts"), "export const a = 1;\n");
  writeFileSync(join(root, "package.json"), "{}\n");
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe("freshBuild", () => {
  test("the build's entry while the sources are as it was made from", () => {
    const entry = stampedBuild();
    expect(freshBuild(root)).toBe(entry);
  });

  test("no build, or a stamp that is missing, corrupt or names files it does not have: the sources run", () => {
    expect(freshBuild(root)).toBeNull();
    writeFileSync(join(root, "dist", "run.js"), "// built\n");
    expect(freshBuild(root)).toBeNull();
    writeFileSync(join(root, "dist", "build.json"), '{"sources": ');
    expect(freshBuild(root)).toBeNull();
    const files = ["run.js"];
    writeStamp({ sources: 1, entry: "run.js", files });
    expect(freshBuild(root)).toBeNull();
    const sources = sourceFingerprint(root);
    writeStamp({ sources, entry: "gone.js", files: ["gone.js"] });
    expect(freshBuild(root)).toBeNull();
    writeStamp({ sources, entry: "run.js" });
    expect(freshBuild(root)).toBeNull();
    writeStamp({ sources, entry: "run.js", files: ["run.js", "../../outside.js"] });
    expect(freshBuild(root)).toBeNull();
    writeStamp({ sources, entry: "run.js", files });
    expect(freshBuild(root)).toBe(join(root, "dist", "run.js"));
  });

  test("a build missing one of its files is not run", () => {
    stampedBuild();
    rmSync(join(root, "dist", "chunk-a.js"));
    expect(freshBuild(root)).toBeNull();
  });

  test("a source edited, added or removed, new dependencies or compiler settings make the build stale", () => {
    stampedBuild();
    writeFileSync(join(root, "src", "app.ts"), "export const a = 2;\n");
    expect(freshBuild(root)).toBeNull();

    stampedBuild();
    // Same size, same time of change: an edit the file's time would not show.
    const { mtime } = statSync(join(root, "src", "app.ts"));
    writeFileSync(join(root, "src", "app.ts"), "export const a = 3;\n");
    utimesSync(join(root, "src", "app.ts"), mtime, mtime);
    expect(freshBuild(root)).toBeNull();

    stampedBuild();
    writeFileSync(join(root, "src", "cli", "new.ts"), "export {};\n");
    expect(freshBuild(root)).toBeNull();

    stampedBuild();
    rmSync(join(root, "src", "cli", "new.ts"));
    expect(freshBuild(root)).toBeNull();

    stampedBuild();
    writeFileSync(join(root, "package-lock.json"), "{}\n");
    expect(freshBuild(root)).toBeNull();

    stampedBuild();
    writeFileSync(join(root, "tsconfig.json"), "{}\n");
    expect(freshBuild(root)).toBeNull();

    expect(stampedBuild()).toBe(freshBuild(root) as string);
  });

  test("a test beside the sources, or new times on unchanged files, leave the build fresh", () => {
    const entry = stampedBuild();
    writeFileSync(join(root, "src", "app.test.ts"), "export {};\n");
    expect(freshBuild(root)).toBe(entry);
    // A copy that did not keep the files' times of change.
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(root, "src", "app.ts"), later, later);
    expect(freshBuild(root)).toBe(entry);
  });
});
