import type { KeyExport } from "./types.ts";

/** Every field of every written key compared with what was meant to be written. */
export function compareRows(expected: KeyExport[], written: KeyExport[]): string[] {
  const problems: string[] = [];
  const byId = new Map(written.map((w) => [w.key.id, w]));
  for (const e of expected) {
    const w = byId.get(e.key.id);
    const label = `${e.key.id} ("${e.key.name}")`;
    if (!w) {
      problems.push(`${label}: missing after import`);
      continue;
    }
    for (const field of Object.keys(e.key) as Array<keyof KeyExport["key"]>) {
      // Lists (allowed models) compare by content.
      if (JSON.stringify(e.key[field]) !== JSON.stringify(w.key[field]))
        problems.push(`${label}: ${field} differs`);
    }
    const eb = JSON.stringify([...e.buckets].sort((a, b) => a.bucketStart - b.bucketStart));
    const wb = JSON.stringify([...w.buckets].sort((a, b) => a.bucketStart - b.bucketStart));
    if (eb !== wb) problems.push(`${label}: usage buckets differ`);
  }
  if (written.length !== expected.length) {
    problems.push(`${written.length} keys written, ${expected.length} expected`);
  }
  return problems;
}
