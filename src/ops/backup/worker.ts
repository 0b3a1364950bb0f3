import { packagePath, RUNNING_FROM } from "../../package-root.ts";
import type { CreateBackupOptions, CreatedBackup } from "./create.ts";
import { BackupError } from "./errors.ts";

// A scheduled backup runs in a worker thread: the SQLite steps (VACUUM INTO,
// integrity_check) are synchronous and would otherwise hold up every request
// the gateway serves for as long as they take.

export type WorkerRequest = Omit<CreateBackupOptions, "clock">;
export type WorkerReply = { ok: true; backup: CreatedBackup } | { ok: false; error: string };

/** The worker's code from where this code runs: the build (src/build/bundle.ts) or the sources. */
const WORKER_ENTRY =
  RUNNING_FROM === "build"
    ? packagePath("dist", "worker-entry.js")
    : packagePath("src", "ops", "backup", "worker-entry.ts");

export function createBackupInWorker(options: WorkerRequest): Promise<CreatedBackup> {
  const worker = new Worker(WORKER_ENTRY);
  return new Promise<CreatedBackup>((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<WorkerReply>) => {
      const reply = event.data;
      if (reply.ok) resolve(reply.backup);
      else reject(new BackupError(reply.error));
    };
    worker.onerror = (event) =>
      reject(new BackupError(`the backup worker failed: ${event.message}`));
    worker.postMessage(options);
  }).finally(() => worker.terminate());
}
