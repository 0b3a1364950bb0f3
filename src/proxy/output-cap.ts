// A request's output cap: how many tokens its answer may hold at most, read
// from (and, when the quota says so, written into) its JSON body. Pure.

type Json = Record<string, unknown>;

interface CapRule {
  /** Fields that bound the output, any of which a client may send. */
  fields: readonly string[];
  /** The field written when the gateway must set a cap the client did not. */
  write: string;
  /** Fields that ask for several answers, each up to the cap. */
  multipliers: readonly string[];
}

/** Endpoints that generate output, by path. Others (embeddings, counting, models) have none. */
const RULES: Record<string, CapRule> = {
  "/v1/chat/completions": {
    fields: ["max_completion_tokens", "max_tokens"],
    write: "max_tokens",
    multipliers: ["n"],
  },
  "/v1/completions": { fields: ["max_tokens"], write: "max_tokens", multipliers: ["n", "best_of"] },
  "/v1/responses": { fields: ["max_output_tokens"], write: "max_output_tokens", multipliers: [] },
  "/v1/messages": { fields: ["max_tokens"], write: "max_tokens", multipliers: [] },
};

/** Every field an output cap is read from: a body goes upstream as sent only if each is plain (as-sent.ts). */
export const CAP_FIELDS: readonly string[] = [
  ...new Set(Object.values(RULES).flatMap((r) => [...r.fields, ...r.multipliers])),
];

export interface OutputCap {
  /** The cap the request names (the smallest, if it names several), or null. */
  named: number | null;
  /** The field the cap is named by (or would be written to). */
  field: string;
  /** Answers asked for at once (`n`, `best_of`): each may reach the cap. */
  answers: number;
}

const positiveInt = (v: unknown): number | null =>
  typeof v === "number" && Number.isInteger(v) && v > 0 ? v : null;

/** The output cap of a request to `path`, or null when the endpoint generates no output. */
export function outputCap(path: string, body: Json): OutputCap | null {
  const rule = RULES[path];
  if (!rule) return null;
  let named: number | null = null;
  let field = rule.write;
  for (const f of rule.fields) {
    const v = positiveInt(body[f]);
    if (v !== null && (named === null || v < named)) {
      named = v;
      field = f;
    }
  }
  let answers = 1;
  for (const f of rule.multipliers) answers = Math.max(answers, positiveInt(body[f]) ?? 1);
  return { named, field, answers };
}

/**
 * The body with its output cap lowered to `cap`: every cap field it names is
 * set to at most `cap`, or, when it names none, the dialect's own field is added.
 */
export function withOutputCap(path: string, body: Json, cap: number): Json {
  const rule = RULES[path];
  if (!rule) return body;
  const out = { ...body };
  let named = false;
  for (const f of rule.fields) {
    const v = positiveInt(out[f]);
    if (v !== null) {
      named = true;
      if (v > cap) out[f] = cap;
    }
  }
  if (!named) out[rule.write] = cap;
  return out;
}
