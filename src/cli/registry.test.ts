import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { Command } from "commander";
import { buildProgram } from "./program.ts";
import { COMMANDS, commandsFor, namedCommands, placeholder } from "./registry.ts";

const MAIN = join(import.meta.dir, "main.ts");

/** `tollgate --help` as printed to a pipe (80 columns, whatever the terminal). */
function helpOf(program: Command): string {
  return program.configureOutput({ getOutHelpWidth: () => 80 }).helpInformation();
}

describe("command registry", () => {
  test("every command loads, under its listed name and description", async () => {
    for (const entry of COMMANDS) {
      const command = await entry.load();
      expect(command.name()).toBe(entry.name);
      expect(command.description()).toBe(entry.description);
      const args = command.registeredArguments.map((a) =>
        a.required ? `<${a.name()}>` : `[${a.name()}]`,
      );
      expect(args.join(" ")).toBe(entry.args ?? "");
    }
  });

  test("tollgate --help with placeholders is the help with every command loaded", async () => {
    const loaded = await Promise.all(COMMANDS.map((entry) => entry.load()));
    const eager = helpOf(buildProgram(loaded));
    expect(helpOf(buildProgram(COMMANDS.map(placeholder)))).toBe(eager);
    for (const entry of COMMANDS) expect(eager).toContain(entry.name);

    const proc = Bun.spawnSync([process.execPath, MAIN, "--help"], {
      env: { PATH: process.env.PATH ?? "" },
    });
    expect(proc.exitCode).toBe(0);
    expect(proc.stdout.toString()).toBe(eager);
  });

  test("only the command named is loaded", async () => {
    const commands = await commandsFor(["--env-file", "x.env", "keys", "list"]);
    const keys = commands.find((c) => c.name() === "keys");
    expect(keys?.commands.map((c) => c.name())).toContain("list");
    for (const other of commands.filter((c) => c.name() !== "keys")) {
      expect(other.commands).toHaveLength(0);
    }
  });
});

describe("namedCommands", () => {
  const cases: Array<[string[], string[]]> = [
    [[], []],
    [["--help"], []],
    [["-V"], []],
    [["serve"], ["serve"]],
    [["keys", "list", "--json"], ["keys"]],
    [["--env-file", "prod.env", "keys", "list"], ["keys"]],
    [["--env-file=prod.env", "usage"], ["usage"]],
    [["help"], ["help"]],
    [
      ["help", "restore"],
      ["help", "restore"],
    ],
    [["restore", "help"], ["restore"]],
    [["--env-file", "serve"], []],
  ];
  for (const [args, named] of cases) {
    test(JSON.stringify(args), () => expect(namedCommands(args)).toEqual(named));
  }
});
