/**
 * What Tollgate writes is its user's alone: the database with its -wal and
 * -shm files, the journal, the instance id, backups and their manifests are
 * 0600, and the folders it creates 0700, whatever the umask.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  E2E_TIMEOUT_MS,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  startGateway,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";

// Explicit, for two busy cores: the runner's 5 s default measures the machine.
setDefaultTimeout(E2E_TIMEOUT_MS);

let mock: MockUpstream;
let gw: GatewayProcess;
let data: string;
// A world-readable umask, as most shells have, passed on to the gateway.
const umask = process.umask(0o022);

let root: string;

beforeAll(async () => {
  mock = await startMockUpstream();
  // The folders below do not exist yet: Tollgate creates them.
  root = mkdtempSync(join(tmpdir(), "tollgate-private-"));
  data = join(root, "data");
  gw = await startGateway({
    mock,
    env: { DATABASE_PATH: join(data, "tollgate.db"), BACKUP_DIR: join(data, "backups") },
  });
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  process.umask(umask);
  await gw?.close();
  await mock?.stop();
  rmSync(root, { recursive: true, force: true });
}, HOOK_TIMEOUT_MS);

const mode = (path: string) => statSync(path).mode & 0o777;

test("database, -wal, -shm, journal, instance id, backup and manifest are 0600; folders 0700", async () => {
  const k = await gw.createKey({ name: "private", limit: 1000 });
  const res = await gw.openai(k.key, { maxRetries: 0 }).chat.completions.create({
    model: "glm-4.7",
    messages: [{ role: "user", content: "hi" }],
  });
  expect(res.usage?.total_tokens).toBeGreaterThan(0);
  const backup = await gw.cli(["backup"]);
  expect(backup.code).toBe(0);

  const files = [
    join(data, "tollgate.db"),
    join(data, "tollgate.db-wal"),
    join(data, "tollgate.db-shm"),
    join(data, "journal", "instance-id"),
  ];
  const journal = readdirSync(join(data, "journal")).filter((f) => f.endsWith(".journal"));
  expect(journal.length).toBeGreaterThan(0);
  files.push(...journal.map((f) => join(data, "journal", f)));
  const backups = readdirSync(join(data, "backups"));
  expect(backups.some((f) => f.includes("manifest") || f.endsWith(".json"))).toBe(true);
  expect(backups.length).toBeGreaterThanOrEqual(2);
  files.push(...backups.map((f) => join(data, "backups", f)));
  const modes = Object.fromEntries(files.map((f) => [f.slice(data.length + 1), mode(f)]));
  expect(modes).toEqual(Object.fromEntries(files.map((f) => [f.slice(data.length + 1), 0o600])));
  for (const dir of [data, join(data, "journal"), join(data, "backups")]) {
    expect(mode(dir)).toBe(0o700);
  }
}, 30_000);
