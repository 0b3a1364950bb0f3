// What one response consumed, by kind of token. `input` excludes cached
// tokens: OpenAI's prompt_tokens count cache reads, Anthropic's input_tokens
// do not; both are brought to this one shape in src/proxy/usage.ts.

export interface TokenUsage {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
}

export const TOKEN_KINDS = ["input", "output", "cacheRead", "cacheWrite"] as const;
export type TokenKind = (typeof TOKEN_KINDS)[number];

export const NO_TOKENS: TokenUsage = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };

/** Every token, whatever its kind: what a key is charged without a models file. */
export function totalTokens(u: TokenUsage): number {
  return u.input + u.output + u.cacheRead + u.cacheWrite;
}

/**
 * An estimate (a stream without usage, a cut stream, a request cut by
 * shutdown) counts as output tokens: the dearest kind on most price lists,
 * so an estimate never undercharges for a model whose output costs more.
 */
export function estimatedUsage(tokens: number): TokenUsage {
  return { ...NO_TOKENS, output: tokens };
}
