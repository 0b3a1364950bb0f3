/**
 * A coding agent's request: hundreds of KB of conversation around the few
 * fields the gateway reads. What reaches the upstream must be the client's
 * own bytes wherever the key's rules leave them alone, with the gateway's
 * changes (usage asked for, a model override) made and nothing else moved.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type OpenAI from "openai";
import {
  E2E_TIMEOUT_MS,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  mockHeaders,
  newTag,
  startGateway,
} from "../harness/gateway.ts";
import {
  type MockUpstream,
  type RecordedRequest,
  startMockUpstream,
} from "../harness/mock-upstream.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

let mock: MockUpstream;
let gw: GatewayProcess;

beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startGateway({ mock });
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await gw?.close();
  await mock?.stop();
}, HOOK_TIMEOUT_MS);

function recorded(tag: string): RecordedRequest {
  const found = mock.requests.filter((r) => r.headers["x-test-tag"] === tag);
  expect(found).toHaveLength(1);
  return found[0] as RecordedRequest;
}

/** About `bytes` of conversation: tool calls, code with quotes and newlines, text in several scripts. */
function conversation(bytes: number): OpenAI.Chat.ChatCompletionMessageParam[] {
  const code = 'export const greet = (name: string) => "héllo " + name + " — ✓ 😀 \\\\ back";\n';
  const out: OpenAI.Chat.ChatCompletionMessageParam[] = [
    { role: "system", content: "You are a careful coding agent. ".repeat(50) },
  ];
  for (let i = 0; JSON.stringify(out).length < bytes; i++) {
    out.push({ role: "user", content: `Fix file ${i}, please; it says "model": "x" somewhere.` });
    out.push({
      role: "assistant",
      content: null,
      tool_calls: [
        {
          id: `call_${i}`,
          type: "function",
          function: { name: "read_file", arguments: JSON.stringify({ path: `src/f${i}.ts` }) },
        },
      ],
    });
    out.push({ role: "tool", tool_call_id: `call_${i}`, content: code.repeat(30) });
  }
  return out;
}

const history = conversation(300_000);

describe("an agent's large body", () => {
  test("left alone by the rules, it reaches the upstream byte for byte, spacing and escapes included", async () => {
    const { key } = await gw.createKey({ name: "agent-as-sent", limit: 10_000_000 });
    const tag = newTag();
    // Written by hand, as some clients do: spaces, escapes a serialiser would not use.
    const sent = `{\n  "model": "glm-4.7",\n  "max_tokens": 64,\n  "messages": ${JSON.stringify(history, null, 1)},\n  "note": "\\u00e9t\\u00e9"\n}`;
    expect(sent.length).toBeGreaterThan(300_000);
    const res = await fetch(`${gw.url}/v1/messages`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-api-key": key,
        ...mockHeaders({ tag }),
      },
      body: sent,
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect(recorded(tag).text).toBe(sent);
  });

  test("a stream asking no usage: usage is asked for upstream, the conversation goes as the client wrote it, and every token is charged", async () => {
    const { key } = await gw.createKey({ name: "agent-stream", limit: 10_000_000 });
    const tag = newTag();
    const client = gw.openai(key, {
      defaultHeaders: mockHeaders({ tag, promptTokens: 40_000, completionTokens: 7 }),
    });
    const stream = await client.chat.completions.create({
      model: "glm-4.7",
      messages: history,
      stream: true,
    });
    let text = "";
    let usageChunks = 0;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) usageChunks++;
    }
    expect(text).toBe("tok0 tok1 tok2 tok3 tok4 tok5 tok6 ");
    // The client did not ask for the usage chunk, so it does not see one.
    expect(usageChunks).toBe(0);
    const up = recorded(tag);
    expect(up.body).toEqual({
      model: "glm-4.7",
      messages: history,
      stream: true,
      stream_options: { include_usage: true },
    });
    // The conversation itself is the client's own text, not a re-serialisation.
    expect(up.text).toContain(`"messages":${JSON.stringify(history)}`);
    // What the upstream reported, charged once: not the gateway's estimate from the size.
    const stats = await gw.statsWhen(key, { tokens: 40_007, requests: 1 });
    expect(stats.total_lifetime_tokens).toBe(40_007);
  });

  test("many bodies written anew at once, queued for the upstream, each reaches it as its own", async () => {
    // Rewritten bodies are put together in one buffer that requests share, at
    // the moment each is sent (src/proxy/spliced-body.ts). Two upstream slots
    // for twelve requests make them wait between being read and being sent:
    // a body put together any earlier would be sent with another's bytes.
    const queued = await startGateway({ mock, env: { UPSTREAM_MAX_CONCURRENCY: "2" } });
    try {
      const { key } = await queued.createKey({ name: "agent-many", limit: 100_000_000 });
      const sizes = [300_000, 20_000, 150_000, 60_000, 280_000, 5_000];
      const requests = Array.from({ length: 12 }, (_, i) => {
        const tag = newTag();
        const messages = conversation(sizes[i % sizes.length] as number).map((m, j) =>
          j === 0 ? { ...m, content: `agent ${i}: ${m.content as string}` } : m,
        );
        const sent = JSON.stringify({ model: "glm-4.7", messages, stream: true });
        return { tag, sent };
      });
      const answers = await Promise.all(
        requests.map(async ({ tag, sent }) => {
          const res = await fetch(`${queued.url}/v1/chat/completions`, {
            method: "POST",
            headers: {
              "content-type": "application/json",
              authorization: `Bearer ${key}`,
              ...mockHeaders({ tag, chunkDelayMs: 5 }),
            },
            body: sent,
          });
          await res.arrayBuffer();
          return res.status;
        }),
      );
      expect(answers).toEqual(Array(12).fill(200));
      for (const { tag, sent } of requests) {
        // The client's bytes, with usage asked for after its last member.
        expect(recorded(tag).text).toBe(
          `${sent.slice(0, -1)},"stream_options":{"include_usage":true}}`,
        );
      }
    } finally {
      await queued.close();
    }
  });

  test("refused as busy, a large body goes to the upstream again whole, as it came and written anew", async () => {
    // Its memory is given back once nothing is sent again (http/proxy/request-body.ts):
    // the gateway's own second try must still send every byte.
    const { key } = await gw.createKey({ name: "agent-busy", limit: 10_000_000 });
    const bodies = [
      JSON.stringify({ model: "glm-4.7", max_tokens: 64, messages: history }),
      JSON.stringify({ model: "glm-4.7", messages: history, stream: true }),
    ];
    for (const sent of bodies) {
      const tag = newTag();
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${key}`,
          "x-mock-refusal": "zai-1302",
          ...mockHeaders({ tag }),
        },
        body: sent,
      });
      expect(res.status).toBe(429);
      await res.arrayBuffer();
      const tries = mock.requests.filter((r) => r.headers["x-test-tag"] === tag);
      expect(tries).toHaveLength(2);
      const expected = sent.endsWith('"stream":true}')
        ? `${sent.slice(0, -1)},"stream_options":{"include_usage":true}}`
        : sent;
      for (const t of tries) expect(t.text).toBe(expected);
    }
  });

  test("a key's model override replaces the model and leaves the rest as it came", async () => {
    const { key } = await gw.createKey({
      name: "agent-override",
      limit: 10_000_000,
      model: "glm-forced",
    });
    const tag = newTag();
    const messagesText = JSON.stringify(history, null, 2);
    const sent = `{"messages": ${messagesText}, "model": "glm-pricey", "temperature": 0.70}`;
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${key}`,
        ...mockHeaders({ tag }),
      },
      body: sent,
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect(recorded(tag).text).toBe(
      `{"messages":${messagesText},"model":"glm-forced","temperature":0.70}`,
    );
  });
});
