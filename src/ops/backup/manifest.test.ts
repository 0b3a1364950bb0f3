import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../../../test/harness/backup-fixtures.ts";
import { checkpointsAfterRestore } from "./checkpoints.ts";
import {
  backupFileName,
  backupPaths,
  looksLikePayload,
  MANIFEST_VERSION,
  type Manifest,
  readManifest,
  writeManifest,
} from "./manifest.ts";

const at = new Date(Date.UTC(2026, 10, 28, 2, 0, 0, 123));

const manifest: Manifest = {
  manifest: MANIFEST_VERSION,
  file: "tollgate-sqlite-2026-11-28T02-00-00-123Z.db.gz",
  kind: "sqlite",
  format: "sqlite",
  compression: "gzip",
  origin: "scheduled",
  source: "sqlite:/srv/tollgate.db",
  createdAt: at.toISOString(),
  tollgateVersion: "0.1.0",
  schema: { migrations: 1, latest: "0000_init", latestAt: 1795851706901 },
  counts: {
    keys: 2,
    usageBuckets: 3,
    lifetimeTokens: 2 ** 40,
    lifetimeRequests: 4,
    bucketTokens: 5,
    checkpoints: 1,
  },
  payload: { bytes: 10, sha256: "a".repeat(64) },
};

describe("backup names", () => {
  const cases: Array<[Parameters<typeof backupFileName>, string]> = [
    [["sqlite", "sqlite", true, "manual", at], "tollgate-sqlite-2026-11-28T02-00-00-123Z.db.gz"],
    [
      ["sqlite", "sqlite", false, "scheduled", at],
      "tollgate-sqlite-2026-11-28T02-00-00-123Z-scheduled.db",
    ],
    [
      ["postgres", "pg_dump", true, "pre-restore", at],
      "tollgate-postgres-2026-11-28T02-00-00-123Z-pre-restore.dump",
    ],
    [
      ["postgres", "logical", true, "manual", at],
      "tollgate-postgres-2026-11-28T02-00-00-123Z.ndjson.gz",
    ],
    [["sqlite", "logical", false, "manual", at], "tollgate-sqlite-2026-11-28T02-00-00-123Z.ndjson"],
  ];
  for (const [args, name] of cases) {
    test(name, () => {
      expect(backupFileName(...args)).toBe(name);
      expect(looksLikePayload(name)).toBe(true);
    });
  }

  test("other files are not taken for backups; a manifest path leads to its payload", () => {
    for (const name of [
      "notes.txt",
      "tollgate.db",
      "apikeys-2026.json",
      "tollgate-x.db.gz.manifest.json",
    ]) {
      expect(looksLikePayload(name)).toBe(false);
    }
    expect(backupPaths("/b/x.db.gz.manifest.json")).toEqual({
      payload: "/b/x.db.gz",
      manifest: "/b/x.db.gz.manifest.json",
    });
    expect(backupPaths("/b/x.db.gz")).toEqual({
      payload: "/b/x.db.gz",
      manifest: "/b/x.db.gz.manifest.json",
    });
  });
});

describe("manifests", () => {
  const dir = tempDir();
  const path = join(dir, "m.manifest.json");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("round trip", () => {
    writeManifest(path, manifest);
    expect(readManifest(path)).toEqual({ ok: true, manifest });
  });

  const altered: Array<[string, (text: string) => string, string, RegExp]> = [
    [
      "a changed field",
      (t) => t.replace('"scheduled"', '"manual"'),
      "manifest",
      /altered or damaged/,
    ],
    ["a flipped digit", (t) => t.replace("1099511627776", "1099511627777"), "manifest", /altered/],
    ["no checksum", (t) => t.replace(/"manifestSha256".*\n/, '"x": 1\n'), "manifest", /altered/],
    ["not JSON", (t) => t.slice(0, 40), "manifest", /not valid JSON/],
    ["nothing", () => "", "manifest", /empty/],
    ["a list", () => "[]", "manifest", /not a JSON object/],
    ["a newer version", () => '{"manifest": 2}', "unknown-format", /version 2, newer/],
  ];
  for (const [what, change, code, reason] of altered) {
    test(`${what} is damage`, () => {
      writeManifest(path, manifest);
      writeFileSync(path, change(readFileSync(path, "utf8")));
      const r = readManifest(path);
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.code).toBe(code as "manifest");
        expect(r.reason).toMatch(reason);
      }
    });
  }

  test("an unknown format and a missing manifest are named", () => {
    writeManifest(path, { ...manifest, format: "zip" as Manifest["format"] });
    const r = readManifest(path);
    expect(r.ok ? "" : r.reason).toBe(
      'unknown backup format "zip" (made by Tollgate 0.1.0; this version reads sqlite, pg_dump, logical)',
    );
    rmSync(path);
    const gone = readManifest(path);
    expect(gone.ok ? "" : gone.code).toBe("missing");
  });
});

describe("checkpoints after a restore", () => {
  const cp = (instanceId: string, lastSeq: number) => ({ instanceId, lastSeq });
  const cases: Array<
    [string, ReturnType<typeof cp>[], ReturnType<typeof cp>[], ReturnType<typeof cp>[]]
  > = [
    ["a fresh database takes the backup's", [cp("a", 5)], [], [cp("a", 5)]],
    [
      "an instance the database knows keeps its own, lower or higher",
      [cp("a", 5), cp("b", 1)],
      [cp("a", 9), cp("b", 0)],
      [cp("a", 9), cp("b", 0)],
    ],
    [
      "instances only one side knows are all kept",
      [cp("a", 5)],
      [cp("c", 2)],
      [cp("a", 5), cp("c", 2)],
    ],
    ["nothing on either side", [], [], []],
  ];
  for (const [what, backup, current, expected] of cases) {
    test(what, () => {
      const r = checkpointsAfterRestore(backup, current);
      expect(r.checkpoints).toEqual(expected);
      expect(r.kept).toBe(current.length);
    });
  }
});
