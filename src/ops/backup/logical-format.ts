import { z } from "zod";
import type { AuditEntry, KeyExport, ModelUsage } from "../../storage/types.ts";
import { type PayloadWriter, readLines } from "./files.ts";
import type { BackupCounts, DatabaseKind, SchemaVersion } from "./manifest.ts";

// The logical format: NDJSON, one JSON value a line, independent of the
// database it came from, so it restores into SQLite and PostgreSQL alike.
//
//   {"tollgate":"logical-backup","version":1,"kind":…,"createdAt":…,"schema":{…}}
//   {"key":{…every KeyRecord field…},"buckets":[[bucketStart,tokens,requests],…]}   one a key
//   {"checkpoint":{"instanceId":…,"lastSeq":…}}                                     one an instance
//   {"modelUsage":{"keyId":…,"model":…,"bucketStart":…,…}}                          one a key, model and hour
//   {"end":{…counts…}}
//
// The end line repeats the counts, so a file cut short is caught even
// without its manifest.

export const LOGICAL_VERSION = 1;

const int = z.number().int().refine(Number.isSafeInteger, "not a safe integer");
const count = int.min(0);

const headerLine = z.object({
  tollgate: z.literal("logical-backup"),
  version: int,
  kind: z.enum(["sqlite", "postgres"]),
  createdAt: z.string(),
  schema: z.object({
    migrations: count,
    latest: z.string().nullable(),
    latestAt: int.nullable(),
  }),
});

const keyLine = z.object({
  key: z.object({
    id: z.string().min(1),
    keyHash: z.string().min(1),
    keyPrefix: z.string(),
    name: z.string(),
    tokenLimit: count,
    model: z.string().nullable(),
    expiresAt: int.nullable(),
    // Absent from backups made before keys had a concurrency limit.
    maxConcurrent: int.min(1).nullable().default(null),
    // Absent from backups made before keys had a weekly limit.
    weeklyLimit: count.nullable().default(null),
    // Absent from backups made before keys had a list of allowed models.
    allowedModels: z.array(z.string()).nullable().default(null),
    disabled: z.boolean(),
    createdAt: int,
    updatedAt: int,
    lastUsedAt: int.nullable(),
    totalTokens: count,
    totalRequests: count,
    // Absent from backups made before keys could be revoked.
    revokedAt: int.nullable().default(null),
  }),
  buckets: z.array(z.tuple([int, count, count])),
});

const checkpointLine = z.object({
  checkpoint: z.object({ instanceId: z.string().min(1), lastSeq: count }),
});

/** Per-model hourly usage (after the keys; absent from backups made before per-model history). */
const modelUsageLine = z.object({
  modelUsage: z.object({
    keyId: z.string().min(1),
    model: z.string(),
    bucketStart: int,
    input: count,
    output: count,
    cacheRead: count,
    cacheWrite: count,
    units: count,
    requests: count,
    spendMicros: count,
  }),
});

/** An audit log entry (after the checkpoints; absent from backups made before the log). */
const auditLine = z.object({
  audit: z.object({
    id: count,
    at: int,
    actor: z.object({ kind: z.enum(["cli", "api", "dashboard"]), name: z.string() }),
    action: z.string(),
    keyId: z.string().nullable(),
    keyPrefix: z.string().nullable(),
    keyName: z.string().nullable(),
    changes: z.record(z.string(), z.unknown()).nullable(),
  }),
});

const endLine = z.object({
  end: z.object({
    keys: count,
    usageBuckets: count,
    lifetimeTokens: count,
    lifetimeRequests: count,
    bucketTokens: count,
    checkpoints: count,
  }),
});

export type LogicalHeader = z.infer<typeof headerLine>;
export type Checkpoint = { instanceId: string; lastSeq: number };

export type LogicalRecord =
  | { type: "header"; header: LogicalHeader }
  | { type: "key"; row: KeyExport }
  | { type: "checkpoint"; checkpoint: Checkpoint }
  | { type: "audit"; entry: AuditEntry }
  | { type: "modelUsage"; row: ModelUsage }
  | { type: "end"; counts: BackupCounts };

/** The file is not a sound logical backup; `line` is 1-based. */
export class LogicalFormatError extends Error {}

export function emptyCounts(): BackupCounts {
  return {
    keys: 0,
    usageBuckets: 0,
    lifetimeTokens: 0,
    lifetimeRequests: 0,
    bucketTokens: 0,
    checkpoints: 0,
  };
}

export function addRow(c: BackupCounts, row: KeyExport): void {
  c.keys++;
  c.lifetimeTokens += row.key.totalTokens;
  c.lifetimeRequests += row.key.totalRequests;
  c.usageBuckets += row.buckets.length;
  for (const b of row.buckets) c.bucketTokens += b.tokens;
}

/** Writes the lines of a logical backup and keeps the counts of what it wrote. */
export class LogicalWriter {
  readonly counts = emptyCounts();

  constructor(private readonly out: PayloadWriter) {}

  header(kind: DatabaseKind, createdAt: Date, schema: SchemaVersion): Promise<void> {
    const h: LogicalHeader = {
      tollgate: "logical-backup",
      version: LOGICAL_VERSION,
      kind,
      createdAt: createdAt.toISOString(),
      schema,
    };
    return this.out.write(`${JSON.stringify(h)}\n`);
  }

  async keys(rows: KeyExport[]): Promise<void> {
    let text = "";
    for (const row of rows) {
      addRow(this.counts, row);
      const buckets = row.buckets.map((b) => [b.bucketStart, b.tokens, b.requests]);
      text += `${JSON.stringify({ key: row.key, buckets })}\n`;
    }
    await this.out.write(text);
  }

  async checkpoints(list: Checkpoint[]): Promise<void> {
    let text = "";
    for (const c of list) {
      this.counts.checkpoints++;
      text += `${JSON.stringify({ checkpoint: { instanceId: c.instanceId, lastSeq: c.lastSeq } })}\n`;
    }
    await this.out.write(text);
  }

  async modelUsage(rows: ModelUsage[]): Promise<void> {
    let text = "";
    for (const r of rows) text += `${JSON.stringify({ modelUsage: r })}\n`;
    await this.out.write(text);
  }

  async audit(entries: AuditEntry[]): Promise<void> {
    let text = "";
    for (const e of entries) text += `${JSON.stringify({ audit: e })}\n`;
    await this.out.write(text);
  }

  end(): Promise<void> {
    return this.out.write(`${JSON.stringify({ end: this.counts })}\n`);
  }
}

/**
 * The records of a logical backup, each validated, in file order: header,
 * keys, checkpoints, end. Throws LogicalFormatError at the first line that
 * breaks the format, and when the end record is missing (a truncated file).
 */
export async function* readLogical(path: string, gzip: boolean): AsyncGenerator<LogicalRecord> {
  let n = 0;
  let stage: "header" | "keys" | "checkpoints" | "done" = "header";
  const fail = (why: string): never => {
    throw new LogicalFormatError(`line ${n}: ${why}`);
  };
  for await (const line of readLines(path, gzip)) {
    n++;
    if (stage === "done") {
      if (line.trim() === "") continue;
      fail("data after the end record");
    }
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      fail("not valid JSON (damaged or cut short)");
    }
    const shape = typeof value === "object" && value !== null ? Object.keys(value)[0] : undefined;
    if (stage === "header") {
      const h = headerLine.safeParse(value);
      if (!h.success) fail("not the header of a Tollgate logical backup");
      const header = h.data as LogicalHeader;
      if (header.version !== LOGICAL_VERSION) {
        fail(
          `logical format version ${header.version}; this version of Tollgate reads ${LOGICAL_VERSION}`,
        );
      }
      stage = "keys";
      yield { type: "header", header };
    } else if (shape === "key" && stage === "keys") {
      const r = keyLine.safeParse(value);
      if (!r.success) fail(`invalid key record: ${issue(r.error)}`);
      const { key, buckets } = r.data as z.infer<typeof keyLine>;
      yield {
        type: "key",
        row: {
          key,
          buckets: buckets.map(([bucketStart, tokens, requests]) => ({
            bucketStart,
            tokens,
            requests,
          })),
        },
      };
    } else if (shape === "checkpoint" && stage !== "done") {
      const r = checkpointLine.safeParse(value);
      if (!r.success) fail(`invalid checkpoint record: ${issue(r.error)}`);
      stage = "checkpoints";
      yield {
        type: "checkpoint",
        checkpoint: (r.data as z.infer<typeof checkpointLine>).checkpoint,
      };
    } else if (shape === "modelUsage" && stage !== "done") {
      const r = modelUsageLine.safeParse(value);
      if (!r.success) fail(`invalid model usage record: ${issue(r.error)}`);
      stage = "checkpoints";
      yield { type: "modelUsage", row: (r.data as z.infer<typeof modelUsageLine>).modelUsage };
    } else if (shape === "audit" && stage !== "done") {
      const r = auditLine.safeParse(value);
      if (!r.success) fail(`invalid audit record: ${issue(r.error)}`);
      stage = "checkpoints";
      yield { type: "audit", entry: (r.data as z.infer<typeof auditLine>).audit as AuditEntry };
    } else if (shape === "end") {
      const r = endLine.safeParse(value);
      if (!r.success) fail(`invalid end record: ${issue(r.error)}`);
      stage = "done";
      yield { type: "end", counts: (r.data as z.infer<typeof endLine>).end };
    } else {
      fail(`unexpected record${shape ? ` "${shape}"` : ""}`);
    }
  }
  if (n === 0) throw new LogicalFormatError("the file holds no data");
  if (stage !== "done") throw new LogicalFormatError(`cut short after line ${n}: no end record`);
}

function issue(err: z.ZodError): string {
  const i = err.issues[0];
  return `${i?.path.join(".")}: ${i?.message}`;
}
