import { describe, expect, test } from "bun:test";
import { ConfigError, loadConfig } from "../../config.ts";

describe("backup configuration", () => {
  test("defaults match the documented ones", () => {
    expect(loadConfig({}).backup).toEqual({
      enabled: false,
      schedule: "0 2 * * *",
      dir: "./data/backups",
      retain: 10,
      compress: true,
    });
  });

  test("values are read", () => {
    const b = loadConfig({
      BACKUP_ENABLED: "true",
      BACKUP_SCHEDULE: "*/15 * * * *",
      BACKUP_DIR: "/srv/backups",
      BACKUP_RETAIN: "0",
      BACKUP_COMPRESS: "false",
    }).backup;
    expect(b).toEqual({
      enabled: true,
      schedule: "*/15 * * * *",
      dir: "/srv/backups",
      retain: 0,
      compress: false,
    });
    expect(loadConfig({ BACKUP_ENABLED: "1", BACKUP_COMPRESS: "no" }).backup).toMatchObject({
      enabled: true,
      compress: false,
    });
  });

  const bad: Array<[Record<string, string>, string, RegExp]> = [
    [
      { BACKUP_SCHEDULE: "61 * * * *" },
      "BACKUP_SCHEDULE",
      /not a valid cron expression \("61 \* \* \* \*"\)/,
    ],
    [{ BACKUP_SCHEDULE: "every night" }, "BACKUP_SCHEDULE", /not a valid cron expression/],
    [{ BACKUP_ENABLED: "maybe" }, "BACKUP_ENABLED", /expected true or false/],
    [{ BACKUP_RETAIN: "-1" }, "BACKUP_RETAIN", /./],
    [{ BACKUP_COMPRESS: "gzip" }, "BACKUP_COMPRESS", /expected true or false/],
  ];
  for (const [env, name, reason] of bad) {
    test(`invalid ${name} stops start-up with one line naming it (${JSON.stringify(env)})`, () => {
      expect(() => loadConfig(env)).toThrow(ConfigError);
      try {
        loadConfig(env);
      } catch (err) {
        const message = (err as Error).message;
        expect(message).toStartWith(`invalid configuration: ${name}:`);
        expect(message).toMatch(reason);
        expect(message).not.toContain("\n");
      }
    });
  }
});
