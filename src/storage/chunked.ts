/** Ids per `IN (…)` list: far below either dialect's limit on bound parameters. */
export const ID_CHUNK = 500;

/** `items` in slices of at most `size`, in order. */
export function chunked<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
