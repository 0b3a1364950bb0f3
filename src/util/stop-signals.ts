/**
 * What a stop signal asks of the server. Ctrl-C in a terminal, `systemctl
 * stop` (which signals the whole control group) and `timeout` all signal the
 * whole process group, and `npm` or `bin/tollgate.js` forward the signal to
 * the server once more: one stop arrives as two signals milliseconds apart.
 * So a signal that follows the previous one within `windowMs` is part of the
 * same stop; only one after a deliberate pause means "exit now".
 */
export type StopAction = "stop" | "repeat" | "exit-now";

/** The pause after which another signal means "exit now". */
export const SIGNAL_REPEAT_WINDOW_MS = 1000;

export function stopSignals(windowMs = SIGNAL_REPEAT_WINDOW_MS): (now: number) => StopAction {
  let last: number | undefined;
  return function onStopSignal(now: number): StopAction {
    const previous = last;
    last = now;
    if (previous === undefined) return "stop";
    // Measured from the previous signal, so a burst of forwarded copies
    // (however many) never adds up to an "exit now".
    return now - previous < windowMs ? "repeat" : "exit-now";
  };
}
