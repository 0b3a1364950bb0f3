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
 * shutdown) of `tokens` in all. The input kinds the upstream did report
 * (Anthropic's message_start gives input and cache counts before the answer)
 * keep their kind; the rest counts as output tokens: the dearest kind on most
 * price lists, so an estimate never undercharges for a model whose output
 * costs more.
 */
export function estimatedUsage(tokens: number, reported: TokenUsage | null = null): TokenUsage {
  if (!reported) return { ...NO_TOKENS, output: tokens };
  const { input, cacheRead, cacheWrite } = reported;
  return {
    input,
    cacheRead,
    cacheWrite,
    output: Math.max(0, tokens - input - cacheRead - cacheWrite),
  };
}
