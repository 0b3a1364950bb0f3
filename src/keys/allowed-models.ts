// Which models a key may ask for: exact names or glob patterns (Bun.Glob:
// `*` matches within a name segment, `**` across `/`, `?`, `[…]` and `{a,b}`
// as usual), matched case-sensitively, as the upstream treats model names.

// Patterns are set by the operator, so few: each is compiled once, not per request.
const globs = new Map<string, Bun.Glob>();
function globOf(pattern: string): Bun.Glob {
  let glob = globs.get(pattern);
  if (!glob) {
    glob = new Bun.Glob(pattern);
    globs.set(pattern, glob);
  }
  return glob;
}

/** Whether a model name matches one exact name or glob pattern (see above). */
export function matchesModel(pattern: string, model: string): boolean {
  return globOf(pattern).match(model);
}

/** Whether `model` is one the key may use; a key without a list may use any. */
export function modelAllowed(allowed: readonly string[] | null, model: string): boolean {
  if (allowed === null) return true;
  return allowed.some((pattern) => matchesModel(pattern, model));
}

/** The list as a refusal names it. */
export function describeAllowed(allowed: readonly string[]): string {
  return allowed.join(", ");
}

/**
 * An OpenAI model list (`{"object":"list","data":[{"id":…},…]}`) with only
 * the models the key may use; anything else is returned as it came.
 */
export function filterModelList(bytes: Uint8Array, allowed: readonly string[]): Uint8Array {
  let list: unknown;
  try {
    list = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return bytes;
  }
  if (
    typeof list !== "object" ||
    list === null ||
    !Array.isArray((list as { data?: unknown }).data)
  )
    return bytes;
  const data = (list as { data: unknown[] }).data.filter(
    (m) =>
      typeof m === "object" &&
      m !== null &&
      typeof (m as { id?: unknown }).id === "string" &&
      modelAllowed(allowed, (m as { id: string }).id),
  );
  return new TextEncoder().encode(JSON.stringify({ ...list, data }));
}
