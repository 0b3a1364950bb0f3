import { readFileSync } from "node:fs";
import { ModelTable } from "./cost.ts";
import { modelsFileSchema } from "./schema.ts";

// MODELS_FILE is read once, at start. Anything wrong with it is one line that
// names the file and the field, so the operator can fix it without a trace.

export class ModelsFileError extends Error {}

/** `models[2].peak.time_zone` from a zod issue path. */
function fieldName(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path)
    out += typeof p === "number" ? `[${p}]` : out === "" ? String(p) : `.${String(p)}`;
  return out || "(top level)";
}

/** Parses the text of a models file; YAML unless the name ends in .json (YAML reads JSON too). */
export function parseModelsFile(path: string, text: string): ModelTable {
  let raw: unknown;
  try {
    raw = path.toLowerCase().endsWith(".json") ? JSON.parse(text) : Bun.YAML.parse(text);
  } catch (err) {
    const why = (err as Error).message.split("\n")[0];
    throw new ModelsFileError(`MODELS_FILE ${path}: cannot be parsed: ${why}`);
  }
  const parsed = modelsFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ModelsFileError(
      `MODELS_FILE ${path}: ${fieldName(issue?.path ?? [])}: ${issue?.message ?? "invalid"}`,
    );
  }
  return new ModelTable(parsed.data);
}

/** The table for MODELS_FILE, or the flat one (every weight 1) when it is unset. */
export function loadModelTable(path: string | undefined): ModelTable {
  if (path === undefined) return ModelTable.flat;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ModelsFileError(
      `MODELS_FILE ${path}: cannot be read (${code === "ENOENT" ? "no such file" : (code ?? (err as Error).message)})`,
    );
  }
  return parseModelsFile(path, text);
}
