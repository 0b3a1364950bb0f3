import type { Database } from "bun:sqlite";
import type { ModelTotal, ModelUsage } from "../types.ts";

// Per-model hourly usage in SQLite. Statements are prepared on first use,
// after the schema is migrated. `upsert` runs inside the caller's transaction.

const TOTALS = `key_id as keyId, model,
  sum(input_tokens) as input, sum(output_tokens) as output,
  sum(cache_read_tokens) as cacheRead, sum(cache_write_tokens) as cacheWrite,
  sum(units) as units, sum(requests) as requests, sum(spend_micros) as spendMicros`;

function prepare(sqlite: Database) {
  return {
    upsert: sqlite.query(
      `insert into model_usage (key_id, model, bucket_start, input_tokens, output_tokens,
         cache_read_tokens, cache_write_tokens, units, requests, spend_micros)
       values ($keyId, $model, $bucketStart, $input, $output, $cacheRead, $cacheWrite,
         $units, $requests, $spendMicros)
       on conflict (key_id, model, bucket_start) do update set
         input_tokens = input_tokens + excluded.input_tokens,
         output_tokens = output_tokens + excluded.output_tokens,
         cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
         cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
         units = units + excluded.units,
         requests = requests + excluded.requests,
         spend_micros = spend_micros + excluded.spend_micros`,
    ),
    all: sqlite.query<ModelTotal, { from: number; to: number }>(
      `select ${TOTALS} from model_usage where bucket_start >= $from and bucket_start < $to
       group by key_id, model order by key_id, model`,
    ),
    one: sqlite.query<ModelTotal, { from: number; to: number; keyId: string }>(
      `select ${TOTALS} from model_usage
       where key_id = $keyId and bucket_start >= $from and bucket_start < $to
       group by key_id, model order by key_id, model`,
    ),
    page: sqlite.query<ModelUsage, { limit: number; offset: number }>(
      `select key_id as keyId, model, bucket_start as bucketStart, input_tokens as input,
         output_tokens as output, cache_read_tokens as cacheRead, cache_write_tokens as cacheWrite,
         units, requests, spend_micros as spendMicros
       from model_usage order by key_id, model, bucket_start limit $limit offset $offset`,
    ),
    keyExists: sqlite.query<{ n: number }, { id: string }>(
      "select 1 as n from api_keys where id = $id",
    ),
    prune: sqlite.query<never, { before: number; limit: number }>(
      `delete from model_usage where rowid in (
         select rowid from model_usage where bucket_start < $before
         order by bucket_start limit $limit)`,
    ),
  };
}

export class SqliteModelUsage {
  private prepared: ReturnType<typeof prepare> | undefined;

  constructor(private readonly sqlite: Database) {}

  private get q() {
    this.prepared ??= prepare(this.sqlite);
    return this.prepared;
  }

  /** Adds rows (inside the caller's transaction). */
  upsert(rows: ModelUsage[]): void {
    for (const r of rows) this.q.upsert.run({ ...r });
  }

  /** Rows of keys this database holds, in one transaction. */
  import(rows: ModelUsage[]): void {
    this.sqlite
      .transaction(() => {
        const known = new Map<string, boolean>();
        for (const r of rows) {
          let ok = known.get(r.keyId);
          if (ok === undefined) {
            ok = this.q.keyExists.get({ id: r.keyId }) !== null;
            known.set(r.keyId, ok);
          }
          if (ok) this.q.upsert.run({ ...r });
        }
      })
      .immediate();
  }

  /** Pages through every row; a snapshot nobody writes (backups) or a quiet database (copies). */
  *pages(batchSize: number): Generator<ModelUsage[]> {
    for (let offset = 0; ; offset += batchSize) {
      const rows = this.q.page.all({ limit: batchSize, offset });
      if (rows.length === 0) return;
      yield rows;
      if (rows.length < batchSize) return;
    }
  }

  totals(from: number, to: number, keyId?: string): ModelTotal[] {
    return keyId === undefined ? this.q.all.all({ from, to }) : this.q.one.all({ from, to, keyId });
  }

  prune(before: number, limit: number): number {
    if (limit <= 0) return 0;
    return this.q.prune.run({ before, limit }).changes;
  }
}
