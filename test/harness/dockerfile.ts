/**
 * Just enough of a Dockerfile reader for the deployment test to run the
 * image's own steps outside Docker: instructions per stage, with line
 * continuations joined and comments dropped.
 */

export interface Instruction {
  /** Upper-case instruction name: FROM, COPY, RUN, … */
  op: string;
  /** Everything after the name, continuations joined. */
  rest: string;
}

export interface Stage {
  /** The FROM line's `AS name`, if any. */
  name: string | undefined;
  instructions: Instruction[];
}

export function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (pending === "" && /^\s*#/.test(line)) continue;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const whole = (pending + line).trim();
    pending = "";
    if (whole !== "") logical.push(whole);
  }
  const stages: Stage[] = [];
  for (const line of logical) {
    const m = /^(\S+)\s*(.*)$/.exec(line);
    if (!m?.[1]) continue;
    const op = m[1].toUpperCase();
    const rest = (m[2] ?? "").replace(/\s+/g, " ").trim();
    if (op === "FROM") {
      const as = / AS (\S+)$/i.exec(rest);
      stages.push({ name: as?.[1], instructions: [{ op, rest }] });
    } else if (op === "ARG" && stages.length === 0) {
      // An ARG before the first FROM only parameterises FROM lines.
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`Dockerfile: ${op} before any FROM`);
      stage.instructions.push({ op, rest });
    }
  }
  return stages;
}

/** The arguments of an exec-form instruction (`["a", "b"]`); throws on the shell form. */
export function execForm(rest: string, what: string): string[] {
  const json = rest.slice(rest.indexOf("["));
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new Error(`${what} is not in exec form (a JSON array): ${rest}`);
  }
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === "string"))
    throw new Error(`${what} is not a JSON array of strings: ${rest}`);
  return parsed as string[];
}

/** `ENV A=1 B=2` (the `KEY=VALUE` form), `$NAME` in values read from `env` so far. */
export function applyEnv(rest: string, env: Record<string, string>): void {
  for (const m of rest.matchAll(/(\w+)=("[^"]*"|\S+)/g)) {
    const name = m[1] as string;
    const value = (m[2] as string).replace(/^"(.*)"$/, "$1");
    env[name] = value.replace(/\$\{?(\w+)\}?/g, (_, v: string) => env[v] ?? "");
  }
}

/** A COPY line's sources and destination; `--from` and `--chown` options apart. */
export function copyArgs(rest: string): { from?: string; sources: string[]; dest: string } {
  const words = rest.split(" ");
  let from: string | undefined;
  while (words[0]?.startsWith("--")) {
    const opt = words.shift() as string;
    if (opt.startsWith("--from=")) from = opt.slice("--from=".length);
  }
  const dest = words.pop();
  if (!dest || words.length === 0) throw new Error(`COPY without source or destination: ${rest}`);
  return { ...(from === undefined ? {} : { from }), sources: words, dest };
}
