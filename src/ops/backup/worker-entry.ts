import { createBackup } from "./create.ts";
import { messageOf } from "./errors.ts";
import type { WorkerReply, WorkerRequest } from "./worker.ts";

// Entry of the worker thread a scheduled backup runs in (see worker.ts).

declare const self: Worker;

self.onmessage = async (event: MessageEvent<WorkerRequest>) => {
  let reply: WorkerReply;
  try {
    reply = { ok: true, backup: await createBackup(event.data) };
  } catch (err) {
    reply = { ok: false, error: messageOf(err) };
  }
  self.postMessage(reply);
};
