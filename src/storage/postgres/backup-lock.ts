import { openOwnConnection } from "./own-connection.ts";

/** Advisory lock key held by the instance taking a scheduled backup (migrations use 7_261_001). */
export const BACKUP_LOCK = 7_261_002;

export interface HeldLock {
  release(): Promise<void>;
}

/**
 * Takes the backup lock on a connection of its own, without waiting: null
 * when another instance holds it. The lock lives as long as the connection,
 * so a crashed holder never leaves it taken.
 */
export async function tryBackupLock(url: string): Promise<HeldLock | null> {
  const sql = openOwnConnection(url, "tollgate-backup-lock");
  try {
    const conn = await sql.reserve();
    const [row] = await conn<{ ok: boolean }[]>`select pg_try_advisory_lock(${BACKUP_LOCK}) as ok`;
    if (!row?.ok) {
      conn.release();
      await sql.end({ timeout: 5 });
      return null;
    }
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        try {
          await conn`select pg_advisory_unlock(${BACKUP_LOCK})`;
        } finally {
          conn.release();
          await sql.end({ timeout: 5 });
        }
      },
    };
  } catch (err) {
    await sql.end({ timeout: 5 });
    throw err;
  }
}
