import { readFileSync } from "node:fs";
import { join } from "node:path";
import { otherTollgateSessions } from "../../storage/postgres/own-connection.ts";

/**
 * The process id of a live gateway holding the journal lock in `journalDir`
 * (each gateway locks its journal folder for as long as it runs), or null.
 */
export function sqliteGatewayPid(journalDir: string): number | null {
  let pid: number;
  try {
    pid = Number(readFileSync(join(journalDir, "instance.lock"), "utf8").trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM" ? pid : null;
  }
}

/** Connections of gateways (or other Tollgate commands) to the database, other than this process's own. */
export function postgresSessions(url: string): Promise<number> {
  return otherTollgateSessions(url, "tollgate-restore");
}
