/**
 * A backup or restore could not be done. The message is meant for the
 * operator, as one line; nothing was changed unless it says so.
 */
export class BackupError extends Error {}

/**
 * The backup file cannot be restored here: it is damaged, or it is a backup
 * this database cannot take (another kind, a newer schema). Nothing changed.
 */
export class BackupRejectedError extends BackupError {}

/** The restore would be unsafe right now (a gateway is serving the database); nothing changed. */
export class RestoreRefusedError extends BackupError {}

export function messageOf(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    return code && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}
