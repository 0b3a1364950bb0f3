import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseEnv } from "node:util";
import { CliError } from "./context.ts";

type Env = Record<string, string | undefined>;

/**
 * `--env-file PATH`: the file's settings replace those of `./.env` (which Bun
 * loads before our code runs), and, like `.env`, never a variable set in the
 * environment itself. A value equal to the one in `./.env` is taken to have
 * come from there.
 */
export function applyEnvFile(
  path: string,
  env: Env = process.env,
  read: (p: string) => string = (p) => readFileSync(p, "utf8"),
  cwd: string = process.cwd(),
): void {
  let text: string;
  try {
    text = read(path);
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why = code === "ENOENT" ? "no such file" : (err as Error).message;
    throw new CliError(`--env-file: cannot read ${resolve(cwd, path)}: ${why}`);
  }
  const fromDotEnv = dotEnvValues(resolve(cwd, ".env"), read);
  for (const [name, value] of Object.entries(parseEnv(text))) {
    const current = env[name];
    if (current === undefined || current === fromDotEnv[name]) env[name] = value;
  }
}

function dotEnvValues(path: string, read: (p: string) => string): Env {
  try {
    return parseEnv(read(path));
  } catch {
    return {};
  }
}
