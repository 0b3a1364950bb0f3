import { hostname, userInfo } from "node:os";
import type { AuditActor } from "../storage/types.ts";

/** The CLI's actor: the system user and the host it runs on. */
export function cliActor(): AuditActor {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry for the uid (some containers).
    user = process.env.USER ?? `uid ${process.getuid?.() ?? "?"}`;
  }
  return { kind: "cli", name: `${user}@${hostname()}` };
}
