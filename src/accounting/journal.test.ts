import { afterEach, describe, expect, test } from "bun:test";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { claimInstance, InstanceLockError } from "./instance.ts";
import { Journal } from "./journal.ts";

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "tollgate-journal-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const ev = (seq: number) => ({
  seq,
  keyId: `key_${seq}`,
  at: 1_000 + seq,
  tokens: seq * 10,
  requests: 1,
});

describe("Journal", () => {
  test("events written are read back in order", () => {
    const dir = tmp();
    const j = Journal.open(dir, "i1");
    for (let s = 1; s <= 3; s++) j.append(ev(s));
    j.close();
    const again = Journal.open(dir, "i1");
    expect(again.read()).toEqual({ events: [ev(1), ev(2), ev(3)], skipped: 0 });
  });

  test("a torn last record is skipped, and later records stay readable", () => {
    const dir = tmp();
    const j = Journal.open(dir, "i1");
    j.append(ev(1));
    j.close();
    // A crash in the middle of a write leaves half a line.
    appendFileSync(join(dir, "i1.journal"), '[2,"key_2",10');
    const reopened = Journal.open(dir, "i1");
    reopened.append(ev(3));
    expect(reopened.read()).toEqual({ events: [ev(1), ev(3)], skipped: 1 });
  });

  test("garbage lines are counted, never fatal", () => {
    const dir = tmp();
    writeFileSync(join(dir, "i1.journal"), 'not json\n[1,"k",1,1]\n[1,"k",1,1,1]\n{"a":1}\n');
    const j = Journal.open(dir, "i1");
    expect(j.read()).toEqual({
      events: [{ seq: 1, keyId: "k", at: 1, tokens: 1, requests: 1 }],
      skipped: 3,
    });
  });

  test("truncate empties; compact keeps exactly the given events", () => {
    const dir = tmp();
    const j = Journal.open(dir, "i1");
    j.append(ev(1));
    j.truncate();
    expect(j.read().events).toEqual([]);
    j.append(ev(2));
    j.append(ev(3));
    j.compact([ev(3)]);
    j.append(ev(4));
    expect(j.read().events).toEqual([ev(3), ev(4)]);
    expect(readFileSync(join(dir, "i1.journal"), "utf8").split("\n")).toHaveLength(3);
  });
});

describe("claimInstance", () => {
  test("the id survives a restart", () => {
    const dir = tmp();
    const a = claimInstance(dir);
    a.release();
    const b = claimInstance(dir);
    expect(b.id).toBe(a.id);
    b.release();
  });

  test("a live process holding the directory keeps others out", () => {
    const dir = tmp();
    // PID 1 is always alive.
    writeFileSync(join(dir, "instance.lock"), "1");
    expect(() => claimInstance(dir)).toThrow(InstanceLockError);
  });

  test("a lock left by a dead process is taken over", () => {
    const dir = tmp();
    writeFileSync(join(dir, "instance.lock"), "999999999");
    const c = claimInstance(dir);
    expect(readFileSync(join(dir, "instance.lock"), "utf8")).toBe(String(process.pid));
    c.release();
  });
});
