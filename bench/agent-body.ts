/**
 * A coding agent's request, as the benchmark sends it: a system prompt, tool
 * definitions and a long conversation of tool calls and file contents (code
 * with quotes, newlines and some non-ASCII text), about `bytes` long as JSON.
 * Real agents send 100 KB to several MB per request; the four small scenarios
 * measure the gateway's fixed cost, this one what it costs per byte.
 * Deterministic: every run and every target sends the same bytes.
 */
export function agentBody(bytes: number, options: { stream?: boolean } = {}): string {
  const tools = Array.from({ length: 12 }, (_, i) => ({
    type: "function",
    function: {
      name: `tool_${i}`,
      description: "Reads or edits a file in the workspace. ".repeat(8),
      parameters: {
        type: "object",
        properties: { path: { type: "string" }, content: { type: "string" } },
        required: ["path"],
      },
    },
  }));
  const file =
    'export function total(items: Item[]): number {\n  // "sum" of the prices — in €, ✓\n  return items.reduce((sum, item) => sum + item.price, 0);\n}\n';
  const messages: unknown[] = [
    { role: "system", content: "You are a careful coding agent. ".repeat(200) },
  ];
  let size = JSON.stringify(messages).length;
  for (let i = 0; size < bytes; i++) {
    const turn = [
      { role: "user", content: `Please look at src/file${i}.ts and fix the bug.` },
      {
        role: "assistant",
        content: null,
        tool_calls: [
          {
            id: `call_${i}`,
            type: "function",
            function: { name: "tool_1", arguments: JSON.stringify({ path: `src/file${i}.ts` }) },
          },
        ],
      },
      { role: "tool", tool_call_id: `call_${i}`, content: file.repeat(25) },
    ];
    messages.push(...turn);
    size += JSON.stringify(turn).length;
  }
  const stream = options.stream ? { stream: true } : {};
  return JSON.stringify({ model: "glm-4.7", max_tokens: 4096, ...stream, tools, messages });
}
