import { agentBody } from "./agent-body.ts";

/**
 * What is sent, and where. Every target gets byte-for-byte the same request
 * apart from the path prefix, so direct, bare and Tollgate do the same work.
 */

export type TargetId = "direct" | "bare" | "tollgate";
export type ScenarioId =
  | "openai"
  | "openai-stream"
  | "anthropic"
  | "anthropic-stream"
  | "openai-agent"
  | "openai-agent-stream";
type Dialect = "openai" | "anthropic";

export interface Scenario {
  id: ScenarioId;
  label: string;
  dialect: Dialect;
  stream: boolean;
  body: string;
}

const OPENAI_MESSAGES = [{ role: "user", content: "Say hello in five tokens." }];
const ANTHROPIC_MESSAGES = [{ role: "user", content: "Say hello in five tokens." }];

// Streamed OpenAI requests do not ask for stream_options.include_usage, like most
// clients: Tollgate then has to add it upstream and hide the usage chunk, which
// is the path worth measuring.
export const SCENARIOS: Scenario[] = [
  {
    id: "openai",
    label: "OpenAI chat",
    dialect: "openai",
    stream: false,
    body: JSON.stringify({ model: "glm-4.7", messages: OPENAI_MESSAGES }),
  },
  {
    id: "openai-stream",
    label: "OpenAI chat, stream",
    dialect: "openai",
    stream: true,
    body: JSON.stringify({ model: "glm-4.7", stream: true, messages: OPENAI_MESSAGES }),
  },
  {
    id: "anthropic",
    label: "Anthropic messages",
    dialect: "anthropic",
    stream: false,
    body: JSON.stringify({ model: "glm-4.7", max_tokens: 64, messages: ANTHROPIC_MESSAGES }),
  },
  {
    id: "anthropic-stream",
    label: "Anthropic messages, stream",
    dialect: "anthropic",
    stream: true,
    body: JSON.stringify({
      model: "glm-4.7",
      max_tokens: 64,
      stream: true,
      messages: ANTHROPIC_MESSAGES,
    }),
  },
];

/** Size of the agent scenario's body, bytes (about). */
export const AGENT_BODY_BYTES = 400_000;

/**
 * A coding agent's request (agent-body.ts), whole and streamed, measured
 * after the four above and apart from them: their own tables, connections
 * and latency rate, and the memory they take is reported on its own, so the
 * four stay comparable from run to run. Whole, Tollgate sends the body on as
 * it came; streamed (without stream_options, as agents send it), it adds the
 * usage request, so the body is written anew around the client's bytes.
 */
export const AGENT_SCENARIOS: Scenario[] = [
  {
    id: "openai-agent",
    label: "OpenAI chat, agent body",
    dialect: "openai",
    stream: false,
    body: agentBody(AGENT_BODY_BYTES),
  },
  {
    id: "openai-agent-stream",
    label: "OpenAI chat, agent body, stream",
    dialect: "openai",
    stream: true,
    body: agentBody(AGENT_BODY_BYTES, { stream: true }),
  },
];

/** The mock serves OpenAI under /v4 and Anthropic under /anthropic; Tollgate under /v1. */
export function pathFor(target: TargetId, dialect: Dialect): string {
  if (target === "tollgate") return dialect === "openai" ? "/v1/chat/completions" : "/v1/messages";
  return dialect === "openai" ? "/v4/chat/completions" : "/anthropic/v1/messages";
}

export function headersFor(scenario: Scenario, key: string): Record<string, string> {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    authorization: `Bearer ${key}`,
  };
  if (scenario.dialect === "anthropic") headers["anthropic-version"] = "2023-06-01";
  return headers;
}
