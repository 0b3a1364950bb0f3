// Peak hours: a span of the local clock in an IANA time zone. The local time
// comes from Intl (the platform's time zone database), so daylight saving
// time moves the span with the zone's clock, as the provider's would.

export interface PeakHours {
  /** Minutes after local midnight: the span starts here (inclusive)… */
  from: number;
  /** …and ends here (exclusive); a span past midnight has `to` < `from`. */
  to: number;
  timeZone: string;
  multiplier: number;
}

const formats = new Map<string, Intl.DateTimeFormat>();
function formatOf(timeZone: string): Intl.DateTimeFormat {
  let f = formats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hour: "numeric",
      minute: "numeric",
      hourCycle: "h23",
    });
    formats.set(timeZone, f);
  }
  return f;
}

/** Minutes after midnight on the local clock of `timeZone` at epoch ms `at`. */
export function localMinuteOfDay(at: number, timeZone: string): number {
  let hour = 0;
  let minute = 0;
  for (const part of formatOf(timeZone).formatToParts(at)) {
    if (part.type === "hour") hour = Number(part.value);
    else if (part.type === "minute") minute = Number(part.value);
  }
  return (hour % 24) * 60 + minute;
}

/** "14:00-18:00" as minutes after midnight (validated by the file schema). */
export function parseHours(text: string): { from: number; to: number } {
  const [from = "", to = ""] = text.split("-");
  const minutes = (hm: string) => {
    const [h = "0", m = "0"] = hm.split(":");
    return Number(h) * 60 + Number(m);
  };
  return { from: minutes(from), to: minutes(to) % (24 * 60) };
}

export function inPeak(at: number, peak: PeakHours): boolean {
  const m = localMinuteOfDay(at, peak.timeZone);
  return peak.from < peak.to ? m >= peak.from && m < peak.to : m >= peak.from || m < peak.to;
}
