import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freshBuild, sourceFingerprint } from "./fresh.ts";

let root: string;

/** A package with two sources and a build stamped for them as they are. */
function stampedBuild(): string {
  const entry = join(root, "dist", "run.js");
  writeFileSync(entry, "// built\n");
  const stamp = { sources: sourceFingerprint(root), entry: "run.js" };
  writeFileSync(join(root, "dist", "build.json"), JSON.stringify(stamp));
  return entry;
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

  test("no build, or a stamp that is missing, corrupt or names no file: the sources run", () => {
    expect(freshBuild(root)).toBeNull();
    writeFileSync(join(root, "dist", "run.js"), "// built\n");
    expect(freshBuild(root)).toBeNull();
    writeFileSync(join(root, "dist", "build.json"), '{"sources": ');
    expect(freshBuild(root)).toBeNull();
    writeFileSync(
      join(root, "dist", "build.json"),
      JSON.stringify({ sources: 1, entry: "run.js" }),
    );
    expect(freshBuild(root)).toBeNull();
    const stamp = { sources: sourceFingerprint(root), entry: "gone.js" };
    writeFileSync(join(root, "dist", "build.json"), JSON.stringify(stamp));
    expect(freshBuild(root)).toBeNull();
  });

  test("a source edited, added or removed, or new dependencies, make the build stale", () => {
    stampedBuild();
    writeFileSync(join(root, "src", "app.ts"), "export const a = 2;\n");
    expect(freshBuild(root)).toBeNull();

    stampedBuild();
    // Same size, later time: a checkout of another version of the file.
    utimesSync(join(root, "src", "app.ts"), new Date(), new Date(Date.now() + 5000));
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
  });

  test("a test beside the sources is not part of the build: adding one leaves it fresh", () => {
    const entry = stampedBuild();
    writeFileSync(join(root, "src", "app.test.ts"), "export {};\n");
    expect(freshBuild(root)).toBe(entry);

    expect(stampedBuild()).toBe(freshBuild(root) as string);
  });
});
