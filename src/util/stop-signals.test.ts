import { expect, test } from "bun:test";
import { type StopAction, stopSignals } from "./stop-signals.ts";

const cases: Array<{ what: string; at: number[]; actions: StopAction[] }> = [
  { what: "one signal stops", at: [0], actions: ["stop"] },
  {
    what: "the group's signal and a forwarded copy count once",
    at: [0, 3],
    actions: ["stop", "repeat"],
  },
  {
    what: "a burst of copies never adds up to exit-now",
    at: [0, 400, 800, 1200, 1600],
    actions: ["stop", "repeat", "repeat", "repeat", "repeat"],
  },
  { what: "a signal after a pause exits now", at: [0, 1000], actions: ["stop", "exit-now"] },
  {
    what: "a pause after a burst exits now, with its own copy a repeat",
    at: [0, 2, 5000, 5001],
    actions: ["stop", "repeat", "exit-now", "repeat"],
  },
];

for (const c of cases) {
  test(c.what, () => {
    const onSignal = stopSignals(1000);
    expect(c.at.map((t) => onSignal(t))).toEqual(c.actions);
  });
}
