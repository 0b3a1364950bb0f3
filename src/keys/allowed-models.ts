// Which models a key may ask for: exact names or glob patterns (Bun.Glob:
// `*` matches within a name segment, `**` across `/`, `?`, `[…]` and `{a,b}`
// as usual), matched case-sensitively, as the upstream treats model names.

/** Whether `model` is one the key may use; a key without a list may use any. */
export function modelAllowed(allowed: readonly string[] | null, model: string): boolean {
  if (allowed === null) return true;
  return allowed.some((pattern) => new Bun.Glob(pattern).match(model));
}

/** The list as a refusal names it. */
export function describeAllowed(allowed: readonly string[]): string {
  return allowed.join(", ");
}
