/**
 * A key restricted to some models, as its holder meets it through the
 * official SDKs: another model is refused with 403 in the route's dialect,
 * naming the models the key may use, and never reaches the upstream;
 * `/v1/models` lists only what the key may use. The check is on the model
 * that goes upstream, after the key's forced override.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import {
  E2E_TIMEOUT_MS,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  startGateway,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";
import { thrown } from "../harness/thrown.ts";

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

const ask = (model: string) => ({
  model,
  max_tokens: 8,
  messages: [{ role: "user" as const, content: "hi" }],
});

describe("allowed models", () => {
  test("OpenAI: a model in the list (by glob) is served; another is PermissionDeniedError naming the list", async () => {
    const k = await gw.createKey({
      name: "picky-openai",
      limit: 100_000,
      models: "glm-4.6*,glm-5",
    });
    const client = gw.openai(k.key);
    const ok = await client.chat.completions.create(ask("glm-4.6"));
    expect(ok.choices.length).toBeGreaterThan(0);
    const before = mock.requestCount;
    const err = await thrown(() => client.chat.completions.create(ask("glm-4.7")));
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    const e = err as InstanceType<typeof OpenAI.PermissionDeniedError>;
    expect(e.status).toBe(403);
    expect(e.message).toContain('"glm-4.7"');
    expect(e.message).toContain("glm-4.6*, glm-5");
    expect((e.error as { type?: string }).type).toBe("permission_error");
    expect(mock.requestCount).toBe(before);
    // The default model (glm-4.7) is not in the list either: a request naming none is refused too.
    const res = await gw.fetch("/v1/chat/completions", {
      method: "POST",
      headers: { authorization: `Bearer ${k.key}`, "content-type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: "hi" }] }),
    });
    expect(res.status).toBe(403);
  });

  test("Anthropic: another model is PermissionDeniedError in Anthropic's shape, never forwarded", async () => {
    const k = await gw.createKey({ name: "picky-anthropic", limit: 100_000, models: "glm-4.6" });
    const client = gw.anthropic(k.key);
    const ok = await client.messages.create(ask("glm-4.6"));
    expect(ok.content.length).toBeGreaterThan(0);
    const before = mock.requestCount;
    const err = await thrown(() => client.messages.create(ask("claude-sonnet-4-5")));
    expect(err).toBeInstanceOf(Anthropic.PermissionDeniedError);
    const e = err as InstanceType<typeof Anthropic.PermissionDeniedError>;
    expect(e.status).toBe(403);
    expect(e.error).toMatchObject({ type: "error", error: { type: "permission_error" } });
    expect(e.message).toContain("it may use: glm-4.6");
    // count_tokens names a model too.
    const counted = await thrown(() =>
      client.messages.countTokens({
        model: "glm-4.7",
        messages: [{ role: "user", content: "hi" }],
      }),
    );
    expect(counted).toBeInstanceOf(Anthropic.PermissionDeniedError);
    expect(mock.requestCount).toBe(before);
  });

  test("/v1/models shows the key only the models it may use; a key without a list sees all", async () => {
    const k = await gw.createKey({
      name: "picky-list",
      limit: 100_000,
      models: "glm-4.5*,glm-4.6",
    });
    const ids = (await gw.openai(k.key).models.list()).data.map((m) => m.id).sort();
    expect(ids).toEqual(["glm-4.5-air", "glm-4.6"]);
    const open = await gw.createKey({ name: "open-list", limit: 100_000 });
    const all = (await gw.openai(open.key).models.list()).data.map((m) => m.id).sort();
    expect(all).toEqual(["glm-4.5-air", "glm-4.6", "glm-4.7"]);
  });

  test("the forced override applies first: the list is checked on the model that goes upstream", async () => {
    // Override inside the list: whatever the request names, the override goes up and is allowed.
    const inside = await gw.createKey({
      name: "override-inside",
      limit: 100_000,
      model: "glm-4.6",
      models: "glm-4.6",
    });
    const res = await gw.openai(inside.key).chat.completions.create(ask("glm-4.7"));
    expect(res.choices.length).toBeGreaterThan(0);
    const sent = mock.requests.at(-1)?.body as { model?: string };
    expect(sent.model).toBe("glm-4.6");
    // Override outside the list: every request is refused, naming the override.
    const outside = await gw.createKey({
      name: "override-outside",
      limit: 100_000,
      model: "glm-4.7",
      models: "glm-4.6",
    });
    const err = await thrown(() => gw.openai(outside.key).chat.completions.create(ask("glm-4.6")));
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((err as Error).message).toContain('"glm-4.7"');
  });

  test("keys update --models changes the list, --no-models and --models '' clear it", async () => {
    const k = await gw.createKey({ name: "changing", limit: 100_000, models: "glm-4.6" });
    const show = async () =>
      JSON.parse((await gw.cli(["keys", "show", k.id, "--json"])).stdout).allowed_models;
    expect(await show()).toEqual(["glm-4.6"]);
    expect((await gw.cli(["keys", "update", k.id, "--models", "glm-4.7, glm-4.5*"])).code).toBe(0);
    expect(await show()).toEqual(["glm-4.7", "glm-4.5*"]);
    expect((await gw.cli(["keys", "update", k.id, "--no-models"])).code).toBe(0);
    expect(await show()).toBeNull();
    expect((await gw.cli(["keys", "update", k.id, "--models", "glm-4.6"])).code).toBe(0);
    expect((await gw.cli(["keys", "update", k.id, "--models", ""])).code).toBe(0);
    expect(await show()).toBeNull();
    const text = (await gw.cli(["keys", "show", k.id])).stdout;
    expect(text).toContain("(any)");
  });
});
