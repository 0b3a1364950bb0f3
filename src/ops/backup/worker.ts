import type { CreateBackupOptions, CreatedBackup } from "./create.ts";
import { BackupError } from "./errors.ts";

// A scheduled backup runs in a worker thread: the SQLite steps (VACUUM INTO,
// integrity_check) are synchronous and would otherwise hold up every request
// the gateway serves for as long as they take.

export type WorkerRequest = Omit<CreateBackupOptions, "clock">;
export type WorkerReply = { ok: true; backup: CreatedBackup } | { ok: false; error: string };

export function createBackupInWorker(options: WorkerRequest): Promise<CreatedBackup> {
  const worker = new Worker(new URL("./worker-entry.ts", import.meta.url).href);
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
