import { Command, Help, Option } from "commander";
import pkg from "../../package.json" with { type: "json" };

/** `tollgate` with the given top-level commands (see registry.ts). */
export function buildProgram(commands: readonly Command[]): Command {
  const program = new Command("tollgate")
    .description("Self-hosted LLM API gateway: per-person keys, rolling 5-hour token quotas.")
    .version(pkg.version, "-V, --version", "print the version")
    .option(
      "--env-file <path>",
      "read settings from this file instead of ./.env (the environment still wins)",
    )
    .showHelpAfterError()
    .exitOverride()
    .enablePositionalOptions()
    // Before any command reads its configuration.
    .hook("preAction", async (_, action) => {
      const envFile = action.optsWithGlobals<{ envFile?: string }>().envFile;
      if (envFile) (await import("./env-file.ts")).applyEnvFile(envFile);
    });
  for (const command of commands) program.addCommand(command);
  program.configureHelp(markRequired());
  acceptEverywhere(program, "--env-file <path>");
  return program;
}

/** Help says which options a command cannot do without. */
function markRequired(): Partial<Help> {
  return {
    optionDescription: (option: Option) => {
      const text = new Help().optionDescription(option);
      return option.mandatory ? `(required) ${text}` : text;
    },
  };
}

/**
 * A global option that may also follow the command's name (`tollgate keys
 * list --env-file F`), while every other option belongs to the command it
 * follows (`backup verify F --json` is verify's --json, not backup's).
 */
function acceptEverywhere(parent: Command, flags: string): void {
  for (const command of parent.commands) {
    command.configureHelp(markRequired());
    command.addOption(new Option(flags).hideHelp());
    if (command.commands.length > 0) command.enablePositionalOptions();
    acceptEverywhere(command, flags);
  }
}
