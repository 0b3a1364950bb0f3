import type { Dialect } from "../errors.ts";
import type { TokenUsage } from "../models/token-usage.ts";
import type { SseEvent } from "./sse.ts";

// What the upstream says a response cost. Pure functions over parsed JSON.

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const count = (v: unknown): number =>
  typeof v === "number" && Number.isFinite(v) && v > 0 ? Math.floor(v) : 0;

/** OpenAI: `total_tokens`, or prompt + completion when an upstream leaves the total out. */
export function openaiTokens(usage: unknown): number | null {
  if (!isObject(usage)) return null;
  if (usage.total_tokens !== undefined) return count(usage.total_tokens);
  return count(usage.prompt_tokens) + count(usage.completion_tokens);
}

/**
 * OpenAI usage by kind. `prompt_tokens` (Responses API: `input_tokens`)
 * include the cache reads of `prompt_tokens_details.cached_tokens`; output
 * is the rest of the total, so the kinds always add up to `openaiTokens`.
 */
export function openaiUsage(usage: unknown): TokenUsage | null {
  const total = openaiTokens(usage);
  if (total === null || !isObject(usage)) return null;
  const details = usage.prompt_tokens_details ?? usage.input_tokens_details;
  const prompt = Math.min(count(usage.prompt_tokens ?? usage.input_tokens), total);
  const cached = Math.min(isObject(details) ? count(details.cached_tokens) : 0, prompt);
  return { input: prompt - cached, cacheRead: cached, cacheWrite: 0, output: total - prompt };
}

const ANTHROPIC_INPUT_FIELDS = [
  "input_tokens",
  "cache_creation_input_tokens",
  "cache_read_input_tokens",
] as const;
const ANTHROPIC_FIELDS = [...ANTHROPIC_INPUT_FIELDS, "output_tokens"] as const;

/** Anthropic: input + output + cache creation + cache read. */
export function anthropicTokens(usage: unknown): number | null {
  if (!isObject(usage)) return null;
  let sum = 0;
  for (const f of ANTHROPIC_FIELDS) sum += count(usage[f]);
  return sum;
}

/** Anthropic usage by kind; the kinds add up to `anthropicTokens`. */
export function anthropicUsage(usage: unknown): TokenUsage | null {
  if (!isObject(usage)) return null;
  return {
    input: count(usage.input_tokens),
    output: count(usage.output_tokens),
    cacheRead: count(usage.cache_read_input_tokens),
    cacheWrite: count(usage.cache_creation_input_tokens),
  };
}

/** Usage by kind a complete (non-stream) JSON response reports, or null when it reports none. */
export function responseUsage(dialect: Dialect, body: unknown): TokenUsage | null {
  if (!isObject(body)) return null;
  return dialect === "anthropic" ? anthropicUsage(body.usage) : openaiUsage(body.usage);
}

/** Tokens a complete (non-stream) JSON response reports, or null when it reports none. */
export function responseTokens(dialect: Dialect, body: unknown): number | null {
  if (!isObject(body)) return null;
  return dialect === "anthropic" ? anthropicTokens(body.usage) : openaiTokens(body.usage);
}

/**
 * Follows a stream's events and keeps what they say about usage.
 * OpenAI sends one chunk with `usage` at the end (when asked for it with
 * `stream_options.include_usage`); some upstreams also put the cumulative
 * usage on every chunk, and the last report wins. Anthropic sends input and cache counts in
 * `message_start` and the cumulative output count in `message_delta`; later
 * values of a field replace earlier ones.
 */
export class StreamUsage {
  private readonly fields = new Map<string, number>();
  private openaiTotal: number | null = null;
  private openaiLast: unknown;
  private openaiFinal = false;
  private finalSeen = false;
  /**
   * Events carrying a piece of the answer, about one token each; used only
   * for an estimate. Bookkeeping events (`[DONE]`, `message_start`, `ping`,
   * block starts and stops) are not counted.
   */
  contentEvents = 0;

  constructor(private readonly dialect: Dialect) {}

  /**
   * Reads one event; returns true when it is an OpenAI usage-only chunk
   * (`choices: []` plus `usage`), which a client that did not ask for usage
   * must not see.
   */
  observe(ev: Pick<SseEvent, "event" | "data">): boolean {
    const data = ev.data;
    if (data === undefined) return false;
    const usageOnly = this.readUsage(data);
    if (!usageOnly && isContentEvent(this.dialect, ev.event, data)) this.contentEvents++;
    return usageOnly;
  }

  /** Keeps the usage an event's data reports; true for OpenAI's usage-only chunk. */
  private readUsage(data: string): boolean {
    // Only events that carry a usage object are worth a JSON parse. With
    // include_usage every OpenAI chunk says "usage":null; those are skipped.
    if (!hasUsageObject(data)) return false;
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {
      return false;
    }
    if (!isObject(json)) return false;
    if (this.dialect === "openai") {
      // Chat and completions streams put usage at the top level; the
      // Responses API in its `response.completed` event's `response`.
      const usage = json.usage ?? (isObject(json.response) ? json.response.usage : undefined);
      const tokens = openaiTokens(usage);
      if (tokens === null) return false;
      // Usage may come on every chunk (continuous usage statistics), each
      // report cumulative: the last one counts. It is final on the usage-only
      // chunk (`choices: []`) or the Responses API's closing event.
      this.openaiTotal = tokens;
      this.openaiLast = usage;
      const usageOnly = Array.isArray(json.choices) && json.choices.length === 0;
      if (usageOnly || !Array.isArray(json.choices)) this.openaiFinal = true;
      return usageOnly;
    }
    const usage =
      json.type === "message_start" && isObject(json.message) ? json.message.usage : json.usage;
    if (isObject(usage)) {
      for (const f of ANTHROPIC_FIELDS)
        if (usage[f] !== undefined) this.fields.set(f, count(usage[f]));
      if (json.type === "message_delta") this.finalSeen = true;
    }
    return false;
  }

  /**
   * The stream ended normally: an OpenAI stream that reported usage only on
   * its content chunks is complete with the last of them.
   */
  end(): void {
    if (this.openaiTotal !== null) this.openaiFinal = true;
  }

  /** Whether the upstream has reported final usage. */
  get complete(): boolean {
    return this.dialect === "openai" ? this.openaiFinal : this.finalSeen;
  }

  /**
   * Input tokens reported so far (Anthropic's message_start: input plus both
   * cache counts), or null. OpenAI reports nothing before its final usage.
   */
  get inputTokens(): number | null {
    if (this.dialect === "openai") return null;
    let sum: number | null = null;
    for (const f of ANTHROPIC_INPUT_FIELDS) {
      const v = this.fields.get(f);
      if (v !== undefined) sum = (sum ?? 0) + v;
    }
    return sum;
  }

  /** Usage by kind reported so far (as `tokens`), or null. */
  get usage(): TokenUsage | null {
    if (this.dialect === "openai")
      return this.openaiTotal === null ? null : openaiUsage(this.openaiLast);
    if (this.fields.size === 0) return null;
    return anthropicUsage(Object.fromEntries(this.fields));
  }

  /** Tokens reported so far (partial for an unfinished Anthropic stream), or null. */
  get tokens(): number | null {
    if (this.dialect === "openai") return this.openaiTotal;
    if (this.fields.size === 0) return null;
    let sum = 0;
    for (const v of this.fields.values()) sum += v;
    return sum;
  }
}

/**
 * Whether an event carries a piece of the answer. Anthropic: a
 * `content_block_delta`. OpenAI chat and completions: every chunk but the
 * closing `[DONE]`; the Responses API (named `response.*` events): the
 * `….delta` ones. Named by the `event:` field, so no JSON parse is needed.
 */
function isContentEvent(dialect: Dialect, event: string | undefined, data: string): boolean {
  if (dialect === "anthropic") return event === "content_block_delta";
  if (event?.startsWith("response.")) return event.endsWith(".delta");
  return data !== "[DONE]";
}

/** Whether a JSON text has a `"usage"` key whose value is an object. */
export function hasUsageObject(data: string): boolean {
  let at = data.indexOf('"usage"');
  while (at !== -1) {
    let i = at + 7;
    while (i < data.length && (data[i] === " " || data[i] === ":" || data[i] === "\t")) i++;
    if (data[i] === "{") return true;
    at = data.indexOf('"usage"', i);
  }
  return false;
}
