import { describe, expect, test } from "bun:test";
import { describeJsonError } from "./json-error.ts";

function said(text: string): string {
  try {
    JSON.parse(text);
  } catch (err) {
    return describeJsonError(text, err);
  }
  throw new Error("parsed");
}

describe("describeJsonError", () => {
  const cases: Array<[string, string]> = [
    [
      '{\n  "keys": [\n    {"key": "pk_secret", "name": "a",}\n  ]\n}',
      "line 3, column 38: expected a property name",
    ],
    [
      '{\n  "keys": [\n    {"key": "pk_secret" "name": "a"}\n  ]\n}',
      "line 3, column 25: expected a comma",
    ],
    ['{"keys": [', "line 1, column 11: "],
    ["{'keys': []}", "line 1, column 2: "],
    ['{"keys": []}\n// done', "line 2, column 1: comments are not allowed in JSON"],
    ["   \n", "the file is empty"],
  ];
  for (const [text, start] of cases) {
    test(JSON.stringify(text), () => {
      const message = said(text);
      expect(message).toStartWith(start);
      expect(message).not.toContain("pk_secret");
    });
  }
});
