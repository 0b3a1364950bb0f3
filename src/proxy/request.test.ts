import { describe, expect, test } from "bun:test";
import { clientHeaders, upstreamHeaders } from "./header-policy.ts";
import { canonicalPath, prepareBody, upstreamUrl, withoutKeyParam } from "./request.ts";

describe("upstreamUrl", () => {
  const oa = "https://api.z.ai/api/coding/paas/v4";
  const an = "https://api.z.ai/api/anthropic";
  const table: Array<[Parameters<typeof upstreamUrl>, string]> = [
    [["openai", oa, "/v1/chat/completions", ""], `${oa}/chat/completions`],
    [["openai", oa, "/v1/models", ""], `${oa}/models`],
    [["openai", oa, "/v1", ""], oa],
    [["openai", oa, "/v1x/odd", ""], `${oa}/v1x/odd`],
    [["anthropic", an, "/v1/messages", ""], `${an}/v1/messages`],
    [
      ["anthropic", an, "/v1/messages/count_tokens", "?beta=true"],
      `${an}/v1/messages/count_tokens?beta=true`,
    ],
    [["openai", oa, "/v1/models", "?api_key=pk_secret&x=1"], `${oa}/models?x=1`],
  ];
  for (const [args, want] of table)
    test(`${args[0]} ${args[2]}${args[3]}`, () => expect(upstreamUrl(...args)).toBe(want));

  test("the api_key parameter never survives, however it is encoded", () => {
    expect(withoutKeyParam("?api_key=pk_a")).toBe("");
    expect(withoutKeyParam("?a=1&api_key=pk_a&b=2")).toBe("?a=1&b=2");
    expect(withoutKeyParam("?api%5Fkey=pk_a&x=1")).toBe("?x=1");
    expect(withoutKeyParam("?api_key=pk_a&api_key=pk_b")).toBe("");
    // A query without it is passed on exactly as it came.
    expect(withoutKeyParam("?q=a%20b&x=%7E")).toBe("?q=a%20b&x=%7E");
    expect(withoutKeyParam("")).toBe("");
  });

  test("canonicalPath gives one spelling per path", () => {
    expect(canonicalPath("/v1//chat/completions/")).toBe("/v1/chat/completions");
    expect(canonicalPath("//v1///messages")).toBe("/v1/messages");
    expect(canonicalPath("/")).toBe("/");
    expect(canonicalPath("/v1/models")).toBe("/v1/models");
  });
});

describe("headers", () => {
  test("the client's credentials and hop-by-hop headers are replaced or dropped", () => {
    const h = upstreamHeaders(
      new Headers({
        authorization: "Bearer pk_client",
        "x-api-key": "pk_client",
        connection: "keep-alive, x-hop",
        "x-hop": "1",
        "keep-alive": "timeout=5",
        "transfer-encoding": "chunked",
        host: "gateway",
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "tools-2024",
        "user-agent": "sdk",
      }),
      "anthropic",
      "master",
    );
    expect(Object.fromEntries(h)).toEqual({
      "x-api-key": "master",
      "content-type": "application/json",
      "anthropic-version": "2023-06-01",
      "anthropic-beta": "tools-2024",
      "user-agent": "sdk",
    });
    const o = upstreamHeaders(new Headers({ "x-api-key": "pk_client" }), "openai", "master");
    expect(Object.fromEntries(o)).toEqual({ authorization: "Bearer master" });
  });

  test("response headers lose framing and encoding the gateway redoes", () => {
    const h = clientHeaders(
      new Headers({
        "content-type": "text/event-stream",
        "content-encoding": "gzip",
        "content-length": "10",
        "transfer-encoding": "chunked",
        "x-upstream": "kept",
      }),
    );
    expect(Object.fromEntries(h)).toEqual({
      "content-type": "text/event-stream",
      "x-upstream": "kept",
    });
  });
});

describe("prepareBody", () => {
  test("a key's model override is forced", () => {
    const r = prepareBody(
      "openai",
      "/v1/chat/completions",
      { model: "gpt-x" },
      "glm-4.5",
      "glm-4.7",
    );
    expect(r.body.model).toBe("glm-4.5");
    const a = prepareBody("anthropic", "/v1/messages", {}, "glm-4.5", "glm-4.7");
    expect(a.body.model).toBe("glm-4.5");
  });

  test("otherwise the request's model, else the default", () => {
    expect(
      prepareBody("openai", "/v1/chat/completions", { model: "m1" }, null, "d").body.model,
    ).toBe("m1");
    expect(prepareBody("openai", "/v1/chat/completions", {}, null, "d").body.model).toBe("d");
    expect(prepareBody("anthropic", "/v1/messages", { model: "" }, null, "d").body.model).toBe("d");
    // Endpoints that name no model are left alone.
    expect(
      prepareBody("openai", "/v1/files", { purpose: "x" }, null, "d").body.model,
    ).toBeUndefined();
  });

  test("openai streams always ask for usage; the client's choice decides hiding", () => {
    const plain = prepareBody("openai", "/v1/chat/completions", { stream: true }, null, "d");
    expect(plain.body.stream_options).toEqual({ include_usage: true });
    expect(plain.hideUsageChunk).toBe(true);
    const asked = prepareBody(
      "openai",
      "/v1/chat/completions",
      { stream: true, stream_options: { include_usage: true } },
      null,
      "d",
    );
    expect(asked.hideUsageChunk).toBe(false);
    const off = prepareBody(
      "openai",
      "/v1/chat/completions",
      { stream: true, stream_options: { include_usage: false, other: 1 } },
      null,
      "d",
    );
    expect(off.body.stream_options).toEqual({ include_usage: true, other: 1 });
    expect(off.hideUsageChunk).toBe(true);
    const nonStream = prepareBody("openai", "/v1/chat/completions", {}, null, "d");
    expect(nonStream.body.stream_options).toBeUndefined();
    const anth = prepareBody("anthropic", "/v1/messages", { stream: true }, null, "d");
    expect(anth.body.stream_options).toBeUndefined();
    expect(anth.stream).toBe(true);
  });

  test("the input object is not modified", () => {
    const input = { stream: true };
    prepareBody("openai", "/v1/chat/completions", input, "m", "d");
    expect(input).toEqual({ stream: true });
  });
});
