/**
 * The build (src/build/bundle.ts, run by `npm install` and `npm run build`)
 * and the launcher that chooses it (src/cli/main.ts), on a copy of the
 * package: a gateway serves from the build while it matches the sources,
 * and from the sources as soon as they change; a build that fails leaves
 * the one before it in place.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  E2E_TIMEOUT_MS,
  freePort,
  operatorEnv,
  REPO_ROOT,
  runCommand,
  waitFor,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

const ADMIN_KEY = `adm_${"b".repeat(40)}`;
let mock: MockUpstream;
let pkg: string;

/** The package as `npm install` leaves it, but for the build: sources, migrations, manifests. */
function copyPackage(): string {
  const root = mkdtempSync(join(tmpdir(), "tollgate-build-"));
  for (const part of ["src", "migrations", "bin", "package.json", "package-lock.json"]) {
    cpSync(join(REPO_ROOT, part), join(root, part), { recursive: true });
  }
  symlinkSync(join(REPO_ROOT, "node_modules"), join(root, "node_modules"));
  return root;
}

const build = (root: string) =>
  runCommand([process.execPath, "src/build/bundle.ts"], {
    cwd: root,
    env: { PATH: process.env.PATH ?? "" },
  });

/** `tollgate serve` through the package's launcher: what it logged as it started, and its answers. */
async function serveOnce(root: string, probe: (base: string) => Promise<void>): Promise<string> {
  const data = mkdtempSync(join(tmpdir(), "tollgate-build-data-"));
  const port = freePort();
  const env = { ...operatorEnv(mock, port, data), ADMIN_API_KEY: ADMIN_KEY };
  const proc = Bun.spawn([process.execPath, join(root, "src", "cli", "main.ts"), "serve"], {
    cwd: data,
    env,
    stdout: "pipe",
    stderr: "pipe",
  });
  const out = new Response(proc.stdout).text();
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitFor(
      "the gateway to answer",
      async () => ((await fetch(`${base}/health`)).ok ? true : undefined),
      20_000,
      50,
    );
    await probe(base);
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
    rmSync(data, { recursive: true, force: true });
  }
  return out;
}

function listening(log: string): { code?: string } {
  const line = log.split("\n").find((l) => l.includes('"tollgate listening"'));
  if (line === undefined) throw new Error(`no start line in:\n${log}`);
  return JSON.parse(line) as { code?: string };
}

beforeAll(async () => {
  mock = await startMockUpstream();
  pkg = copyPackage();
});
afterAll(async () => {
  await mock.stop();
  rmSync(pkg, { recursive: true, force: true });
});

describe("the build", () => {
  test("the gateway serves from its build, admin API and web pages included, and from the sources once they change", async () => {
    const built = await build(pkg);
    expect(built.stderr).toBe("");
    expect(built.code).toBe(0);
    expect(built.stdout.trim()).toBe(`built ${join(pkg, "dist")}`);
    expect(existsSync(join(pkg, "dist", "build.json"))).toBe(true);

    const probe = async (base: string) => {
      // The admin API is loaded only when configured: a chunk of its own in the build.
      const admin = await fetch(`${base}/admin/keys`, {
        headers: { authorization: `Bearer ${ADMIN_KEY}` },
      });
      expect(admin.status).toBe(200);
      expect(((await admin.json()) as { total: number }).total).toBe(0);
      // The web pages' files are read from the package, not from the build.
      const page = await fetch(`${base}/web/style.css`);
      expect(page.status).toBe(200);
      expect(await page.text()).toBe(
        readFileSync(join(REPO_ROOT, "src", "web", "static", "style.css"), "utf8"),
      );
      // A proxied call without a key: the gateway's own answer, in the OpenAI shape.
      const call = await fetch(`${base}/v1/chat/completions`, { method: "POST", body: "{}" });
      expect(call.status).toBe(401);
    };
    expect(listening(await serveOnce(pkg, probe)).code).toBe("build");

    // A source changed (a checkout, an edit): the build no longer matches it.
    appendFileSync(join(pkg, "src", "http", "health-route.ts"), "// edited\n");
    expect(listening(await serveOnce(pkg, probe)).code).toBe("sources");

    // Built again, it is used again.
    expect((await build(pkg)).code).toBe(0);
    expect(listening(await serveOnce(pkg, probe)).code).toBe("build");
  });

  test("a build that fails says why, and leaves the previous build whole", async () => {
    const root = copyPackage();
    try {
      expect((await build(root)).code).toBe(0);
      const stamp = readFileSync(join(root, "dist", "build.json"), "utf8");
      const chunks = readdirSync(join(root, "dist")).sort();
      mkdirSync(join(root, "src", "broken"));
      writeFileSync(join(root, "src", "broken", "index.ts"), "export const = ;\n");
      appendFileSync(join(root, "src", "cli", "run.ts"), 'import "../broken/index.ts";\n');

      const failed = await build(root);
      expect(failed.code).toBe(1);
      expect(failed.stderr).toStartWith("error: the build failed\n");
      expect(failed.stderr).toContain("broken/index.ts");
      expect(failed.stderr).not.toMatch(/^\s+at /m);
      expect(readFileSync(join(root, "dist", "build.json"), "utf8")).toBe(stamp);
      expect(readdirSync(join(root, "dist")).sort()).toEqual(chunks);
      // Nothing half-built left beside it, and no lock.
      expect(readdirSync(root).filter((f) => f.startsWith("dist."))).toEqual([]);

      // Another build under way (its lock is fresh): this one waits for nothing and changes nothing.
      mkdirSync(join(root, "dist.lock"));
      const locked = await build(root);
      expect(locked.code).toBe(1);
      expect(locked.stderr).toStartWith("error: another build is under way");
      expect(readFileSync(join(root, "dist", "build.json"), "utf8")).toBe(stamp);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
