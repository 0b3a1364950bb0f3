import { describe, expect, test } from "bun:test";
import { createLogger } from "./log.ts";

function capture(level: Parameters<typeof createLogger>[0]) {
  const lines: string[] = [];
  const log = createLogger(level, { write: (l) => lines.push(l) });
  return { log, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("log lines", () => {
  test("one JSON object per line: level, time, service, the fields, then the message", () => {
    const { log, lines } = capture("info");
    const before = Date.now();
    log.info({ keyId: "k1", tokens: 42, nested: { a: [1, "x"] } }, "request");
    log.warn("database slow");
    expect(lines).toHaveLength(2);
    expect(lines.every((l) => l.endsWith("}\n") && !l.slice(0, -1).includes("\n"))).toBe(true);
    const first = JSON.parse(lines[0] as string);
    expect(Object.keys(first)).toEqual([
      "level",
      "time",
      "service",
      "keyId",
      "tokens",
      "nested",
      "msg",
    ]);
    expect(first).toMatchObject({
      level: "info",
      service: "tollgate",
      keyId: "k1",
      tokens: 42,
      nested: { a: [1, "x"] },
      msg: "request",
    });
    expect(new Date(first.time).toISOString()).toBe(first.time);
    expect(Date.parse(first.time)).toBeGreaterThanOrEqual(before - 1);
    expect(JSON.parse(lines[1] as string)).toMatchObject({ level: "warn", msg: "database slow" });
  });

  test("below the level nothing is written, and isLevelEnabled says so", () => {
    const { log, parsed } = capture("warn");
    log.debug("d");
    log.info({ a: 1 }, "i");
    log.warn("w");
    log.error({ b: 2 }, "e");
    expect(parsed().map((l) => l.level)).toEqual(["warn", "error"]);
    expect(log.isLevelEnabled("info")).toBe(false);
    expect(log.isLevelEnabled("warn")).toBe(true);
    const debug = capture("debug");
    debug.log.debug("d");
    expect(debug.parsed()).toHaveLength(1);
  });

  test("an error is written as its type, message and stack, with its code", () => {
    const { log, parsed } = capture("info");
    const err = Object.assign(new TypeError("boom"), { code: "E_BOOM" });
    log.error({ err }, "unhandled error");
    const line = parsed()[0] as { err: Record<string, unknown> };
    expect(line.err.type).toBe("TypeError");
    expect(line.err.message).toBe("boom");
    expect(String(line.err.stack)).toContain("boom");
    expect(line.err.code).toBe("E_BOOM");
  });

  test("an error's cause is written too, whether given to the constructor or set as a field", () => {
    const { log, parsed } = capture("info");
    const root = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), {
      code: "ECONNREFUSED",
    });
    log.error({ err: new Error("query failed", { cause: root }) }, "a");
    const driverStyle = new Error("Failed query: select 1");
    (driverStyle as unknown as { cause: unknown }).cause = root;
    log.error({ err: driverStyle }, "b");
    for (const line of parsed() as { err: { message: string; cause: Record<string, unknown> } }[]) {
      expect(line.err.cause.message).toBe("connect ECONNREFUSED 127.0.0.1:5432");
      expect(line.err.cause.code).toBe("ECONNREFUSED");
      expect(line.err.cause.type).toBe("Error");
    }
  });

  test("odd values never break a line: undefined is left out, cycles, BigInts and failing getters are named", () => {
    const { log, parsed } = capture("info");
    const cycle: Record<string, unknown> = { name: "outer" };
    cycle.self = cycle;
    const err = new Error("with a cycle");
    (err as unknown as { ctx: unknown }).ctx = { err };
    const getter = Object.defineProperty({ ok: 1 }, "bad", {
      enumerable: true,
      get() {
        throw new Error("no");
      },
    });
    log.info(
      { gone: undefined, big: 10n, cycle, err, getter, text: 'a "quoted"\nline' },
      'msg with "quotes"',
    );
    const line = parsed()[0] as Record<string, Record<string, unknown>>;
    expect("gone" in line).toBe(false);
    expect(line.big as unknown).toBe(10);
    expect(line.cycle).toEqual({ name: "outer", self: "[Circular]" });
    expect(line.err?.message).toBe("with a cycle");
    expect(line.err?.ctx).toEqual({ err: "[Circular]" });
    expect(line.getter).toEqual({ ok: 1, bad: "[unreadable]" });
    expect(line.text as unknown).toBe('a "quoted"\nline');
    expect(line.msg as unknown).toBe('msg with "quotes"');
  });

  test("a field whose getter throws is named, and the line is still written", () => {
    const { log, parsed } = capture("info");
    const fields = Object.defineProperty({ a: 1 }, "b", {
      enumerable: true,
      get() {
        throw new Error("no");
      },
    });
    log.info(fields, "still written");
    expect(parsed()[0]).toMatchObject({ a: 1, b: "[unreadable]", msg: "still written" });
  });

  test("inherited fields are not written, only the object's own", () => {
    const { log, parsed } = capture("info");
    const fields = Object.create({ inherited: "no" }) as Record<string, unknown>;
    fields.own = "yes";
    log.info(fields, "m");
    expect(parsed()[0]).toMatchObject({ own: "yes" });
    expect("inherited" in (parsed()[0] as object)).toBe(false);
  });

  test("at the silent level nothing is written at any level", () => {
    const { log, lines } = capture("silent");
    for (const level of ["debug", "info", "warn", "error"] as const) {
      expect(log.isLevelEnabled(level)).toBe(false);
      log[level]({ a: 1 }, "nothing");
    }
    expect(lines).toEqual([]);
  });
});

describe("stdout", () => {
  // A child process, so its stdout can be read as a whole.
  function run(script: string): { out: string; code: number } {
    const proc = Bun.spawnSync([process.execPath, "-e", script], {
      env: { PATH: process.env.PATH ?? "" },
    });
    return { out: proc.stdout.toString(), code: proc.exitCode ?? -1 };
  }
  const LOG = JSON.stringify(`${import.meta.dir}/log.ts`);

  test("lines logged in one turn of the event loop are written together, after it", () => {
    const { out, code } = run(`
      const { createLogger } = await import(${LOG});
      const log = createLogger("info");
      log.info({ n: 1 }, "a");
      log.info({ n: 2 }, "b");
      process.stdout.write("marker\\n");
    `);
    expect(code).toBe(0);
    const lines = out.trim().split("\n");
    expect(lines[0]).toBe("marker");
    expect(lines.slice(1).map((l) => JSON.parse(l).msg)).toEqual(["a", "b"]);
  });

  test("flush writes what is held at once, before an exit", () => {
    const { out, code } = run(`
      const { createLogger } = await import(${LOG});
      const log = createLogger("info");
      log.error({ journal: "j" }, "usage left in the journal");
      log.flush();
      process.exit(3);
    `);
    expect(code).toBe(3);
    expect(JSON.parse(out.trim())).toMatchObject({
      level: "error",
      msg: "usage left in the journal",
    });
  });
});
