// Prometheus' text exposition format (version 0.0.4), written by hand: a few metric families of
// gauges and counters need no client library. Pure.

export type MetricType = "gauge" | "counter";

export interface Sample {
  labels?: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

/** The content type Prometheus expects for this format. */
export const TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** A label value with `\`, `"` and newlines escaped. */
function escapeLabel(value: string): string {
  if (!/[\\"\n]/.test(value)) return value;
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** HELP text with `\` and newlines escaped. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(value);
}

/** The families as one exposition text. A family without samples still says HELP and TYPE, so
 * a metric that is zero series today (no PF planned) is known to exist. */
export function renderText(families: readonly MetricFamily[]): string {
  const out: string[] = [];
  for (const family of families) {
    out.push(`# HELP ${family.name} ${escapeHelp(family.help)}`);
    out.push(`# TYPE ${family.name} ${family.type}`);
    for (const sample of family.samples) {
      let line = family.name;
      if (sample.labels) {
        let sep = "{";
        for (const k in sample.labels) {
          line += `${sep}${k}="${escapeLabel(sample.labels[k]!)}"`;
          sep = ",";
        }
        if (sep === ",") line += "}";
      }
      out.push(`${line} ${formatValue(sample.value)}`);
    }
  }
  out.push("");
  return out.join("\n");
}
