import type { ModelTable } from "../models/cost.ts";
import type { TokenUsage } from "../models/token-usage.ts";
import type { UsageLedger } from "./ledger.ts";
import { historyModelName } from "./model-usage.ts";

// One request's charge, made exactly once: when its usage is known, or, if
// shutdown cannot wait that long, with what is known by then. The handle is
// the one place that prices usage (weighted units and spend), journals it,
// and lets the request's reservation give way to it in the same step.

export interface ChargeDeps {
  ledger: UsageLedger;
  models: ModelTable;
  clock: () => number;
}

export interface ChargeRequest {
  keyId: string;
  /** The model the request went upstream with, if it named one. */
  model: string | undefined;
  /** Called with the units charged (the reservation gives way to them). */
  settle: (units: number) => void;
  /** What a request cut by shutdown before it streamed is charged. */
  estimate: () => TokenUsage;
}

export interface ChargeHandle {
  /** Prices and journals `usage`; false when the request was already charged. */
  charge(usage: TokenUsage): boolean;
  /** Units charged so far (0 until the charge). */
  readonly units: number;
  /** Shutdown's way in once the request streams: the stream charges what it knows. */
  forceWith(force: () => void): void;
  /** The request is over (charged or not): shutdown need not wait for it. */
  close(): void;
}

export function openCharge(deps: ChargeDeps, req: ChargeRequest): ChargeHandle {
  let charged = false;
  let units = 0;
  let force: (() => void) | undefined;
  const charge = (usage: TokenUsage): boolean => {
    if (charged) return false;
    const cost = deps.models.cost(req.model, usage, deps.clock());
    charged = true;
    units = cost.units;
    const detail =
      req.model === undefined
        ? undefined
        : { model: historyModelName(req.model), usage, spendMicros: cost.spendMicros };
    deps.ledger.record(req.keyId, units, 1, detail);
    req.settle(units);
    return true;
  };
  const close = deps.ledger.hold(() => {
    if (force) force();
    else charge(req.estimate());
  });
  return {
    charge,
    get units() {
      return units;
    },
    forceWith(f) {
      force = f;
    },
    close,
  };
}
