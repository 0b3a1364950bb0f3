import { type ParseError, parse, printParseErrorCode } from "jsonc-parser";

/** By the names printParseErrorCode gives. */
const SAID: Record<string, string> = {
  PropertyNameExpected:
    'expected a property name in double quotes (a trailing comma, or a name without "…"?)',
  ValueExpected: "expected a value (a trailing comma, or a missing value?)",
  CommaExpected: "expected a comma",
  ColonExpected: "expected a colon after the property name",
  CloseBraceExpected: "expected } to close an object",
  CloseBracketExpected: "expected ] to close a list",
  EndOfFileExpected: "unexpected text after the end of the document",
  InvalidSymbol: "unexpected character (strings need double quotes)",
  InvalidCommentToken: "comments are not allowed in JSON",
  UnexpectedEndOfComment: "comments are not allowed in JSON",
  UnexpectedEndOfString: "a string is not closed",
  UnexpectedEndOfNumber: "a number is cut short",
  InvalidEscapeCharacter: "an invalid escape (\\…) in a string",
  InvalidCharacter: "a control character inside a string",
};

/**
 * Where and why `text` is not JSON, for a person fixing the file by hand:
 * "line 3, column 14: expected a comma". The runtime's own parse error names
 * no position, so the text is scanned again by a parser that reports one. It
 * never quotes the text: the file may hold keys in clear.
 */
export function describeJsonError(text: string, err: unknown): string {
  if (text.trim() === "") return "the file is empty";
  const errors: ParseError[] = [];
  parse(text, errors, { disallowComments: true, allowTrailingComma: false });
  const first = errors[0];
  if (!first) return jsonErrorMessage(err);
  const before = text.slice(0, first.offset);
  const line = before.split("\n").length;
  const column = first.offset - before.lastIndexOf("\n");
  const code = printParseErrorCode(first.error);
  const why = SAID[code] ?? code;
  return `line ${line}, column ${column}: ${why}`;
}

/**
 * A JSON parse error fit to show: the parser may quote a token of the input
 * ("Unexpected identifier "pk_…"") and the input may be a file of keys, so
 * anything quoted is blanked out.
 */
export function jsonErrorMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/"[^"]*"/g, '"…"').replace(/'[^']*'/g, "'…'");
}
