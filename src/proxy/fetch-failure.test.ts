import { expect, test } from "bun:test";
import { describeFetchFailure } from "./fetch-failure.ts";

const failure = (code: string | undefined, message: string) =>
  Object.assign(new TypeError(message), code === undefined ? {} : { code });

const cases: Array<[string, Error, string]> = [
  [
    "http://127.0.0.1:1/v1/chat",
    failure(
      "ECONNREFUSED",
      "ECONNREFUSED: Unable to connect. Is the computer able to access the url?",
    ),
    "upstream 127.0.0.1:1 unreachable: connection refused (nothing listens on that port)",
  ],
  [
    "https://api.example.invalid/x",
    failure("ENOTFOUND", "getaddrinfo ENOTFOUND api.example.invalid"),
    "upstream api.example.invalid unreachable: host name not found (DNS)",
  ],
  [
    "https://api.z.ai/api",
    failure("EWHATEVER", "something odd"),
    "upstream api.z.ai unreachable: connection failed (EWHATEVER)",
  ],
  [
    "https://api.z.ai/api",
    failure(undefined, "odd"),
    "upstream api.z.ai unreachable: connection failed",
  ],
];

for (const [url, err, said] of cases) {
  test(`${url}: ${said}`, () => {
    expect(describeFetchFailure(url, err)).toBe(said);
    expect(describeFetchFailure(url, err)).not.toContain("Is the computer");
  });
}
