import type postgres from "postgres";
import type { ModelAmounts } from "../../models/model-amounts.ts";
import type { ModelTotal, ModelUsage } from "../types.ts";
import type { Sql } from "./database.ts";

// Per-model hourly usage in PostgreSQL. `upsertModelUsage` runs inside the
// flush's transaction, after the key rows are locked.

/** Adds rows, in (key, model, hour) order so that concurrent flushes lock rows alike. */
export async function upsertModelUsage(
  tx: postgres.TransactionSql,
  rows: ModelUsage[],
): Promise<void> {
  if (rows.length === 0) return;
  const sorted = [...rows].sort((a, b) =>
    a.keyId !== b.keyId
      ? a.keyId < b.keyId
        ? -1
        : 1
      : a.model !== b.model
        ? a.model < b.model
          ? -1
          : 1
        : a.bucketStart - b.bucketStart,
  );
  const col = <K extends keyof ModelUsage>(k: K) => tx.array(sorted.map((r) => r[k]) as never[]);
  await tx`
    insert into model_usage (key_id, model, bucket_start, input_tokens, output_tokens,
      cache_read_tokens, cache_write_tokens, units, requests, spend_micros)
    select * from unnest(
      ${col("keyId")}::text[], ${col("model")}::text[], ${col("bucketStart")}::int8[],
      ${col("input")}::int8[], ${col("output")}::int8[], ${col("cacheRead")}::int8[],
      ${col("cacheWrite")}::int8[], ${col("units")}::int8[], ${col("requests")}::int8[],
      ${col("spendMicros")}::int8[]
    )
    on conflict (key_id, model, bucket_start) do update set
      input_tokens = model_usage.input_tokens + excluded.input_tokens,
      output_tokens = model_usage.output_tokens + excluded.output_tokens,
      cache_read_tokens = model_usage.cache_read_tokens + excluded.cache_read_tokens,
      cache_write_tokens = model_usage.cache_write_tokens + excluded.cache_write_tokens,
      units = model_usage.units + excluded.units,
      requests = model_usage.requests + excluded.requests,
      spend_micros = model_usage.spend_micros + excluded.spend_micros`;
}

type Row = Record<keyof ModelAmounts, string> & {
  key_id: string;
  model: string;
};

/** int8 columns and their sums arrive as strings. */
function amountsOf(r: Row): ModelAmounts {
  return {
    input: Number(r.input),
    output: Number(r.output),
    cacheRead: Number(r.cacheRead),
    cacheWrite: Number(r.cacheWrite),
    units: Number(r.units),
    requests: Number(r.requests),
    spendMicros: Number(r.spendMicros),
  };
}

export async function modelUsage(
  client: Sql,
  from: number,
  to: number,
  keyId?: string,
): Promise<ModelTotal[]> {
  const rows = await client<Row[]>`
    select key_id, model,
      sum(input_tokens) as input, sum(output_tokens) as output,
      sum(cache_read_tokens) as "cacheRead", sum(cache_write_tokens) as "cacheWrite",
      sum(units) as units, sum(requests) as requests, sum(spend_micros) as "spendMicros"
    from model_usage
    where bucket_start >= ${from} and bucket_start < ${to}
      ${keyId === undefined ? client`` : client`and key_id = ${keyId}`}
    group by key_id, model
    order by key_id, model`;
  return rows.map((r) => ({ keyId: r.key_id, model: r.model, ...amountsOf(r) }));
}

/** As `pruneUsage` (history.ts): a chunk of the oldest rows, deleted by physical address. */
export async function pruneModelUsage(client: Sql, before: number, limit: number): Promise<number> {
  if (limit <= 0) return 0;
  const gone = await client`
    delete from model_usage
    where ctid = any(array(
      select ctid from model_usage
      where bucket_start < ${before}
      order by bucket_start
      limit ${limit}))`;
  return gone.count;
}

/** Every row, a page at a time, ordered by key, model and hour. */
export async function* exportModelUsage(
  client: Sql | postgres.TransactionSql,
  batchSize: number,
): AsyncIterable<ModelUsage[]> {
  for (let offset = 0; ; offset += batchSize) {
    const rows = await client<Row[]>`
      select key_id, model, bucket_start as "bucketStart", input_tokens as input,
        output_tokens as output, cache_read_tokens as "cacheRead",
        cache_write_tokens as "cacheWrite", units, requests, spend_micros as "spendMicros"
      from model_usage order by key_id, model, bucket_start
      limit ${batchSize} offset ${offset}`;
    if (rows.length === 0) return;
    yield rows.map((r) => ({
      keyId: r.key_id,
      model: r.model,
      bucketStart: Number((r as unknown as { bucketStart: string }).bucketStart),
      ...amountsOf(r),
    }));
    if (rows.length < batchSize) return;
  }
}

/** Adds rows of keys the database holds, in one transaction. */
export async function importModelUsage(client: Sql, rows: ModelUsage[]): Promise<void> {
  if (rows.length === 0) return;
  await client.begin(async (tx) => {
    const ids = [...new Set(rows.map((r) => r.keyId))];
    const found = await tx<{ id: string }[]>`
      select id from api_keys where id = any(${tx.array(ids)}::text[])`;
    const known = new Set(found.map((r) => r.id));
    await upsertModelUsage(
      tx,
      rows.filter((r) => known.has(r.keyId)),
    );
  });
}
