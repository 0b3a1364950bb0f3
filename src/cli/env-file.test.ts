import { describe, expect, test } from "bun:test";
import { CliError } from "./context.ts";
import { applyEnvFile } from "./env-file.ts";

const files = (map: Record<string, string>) => (p: string) => {
  const text = map[p];
  if (text === undefined) throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
  return text;
};

describe("applyEnvFile", () => {
  test("sets what is unset and replaces what ./.env set, never the environment's own", () => {
    const env: Record<string, string | undefined> = {
      DATABASE_PATH: "./data/tollgate.db", // from ./.env
      PORT: "4000", // set by the shell
    };
    applyEnvFile(
      "/srv/gw.env",
      env,
      files({
        "/srv/gw.env": "DATABASE_PATH=/srv/data/tollgate.db\nPORT=5000\nLOG_LEVEL=debug\n",
        "/work/.env": "DATABASE_PATH=./data/tollgate.db\n",
      }),
      "/work",
    );
    expect(env).toEqual({
      DATABASE_PATH: "/srv/data/tollgate.db",
      PORT: "4000",
      LOG_LEVEL: "debug",
    });
  });

  test("a missing file is a clear error naming its full path", () => {
    expect(() => applyEnvFile("gw.env", {}, files({}), "/work")).toThrow(
      new CliError("--env-file: cannot read /work/gw.env: no such file"),
    );
  });
});
