// Prometheus' text exposition format (version 0.0.4), written by hand: a few metric families of
// gauges and counters need no client library. Pure.

export type MetricType = "gauge" | "counter";

/** One sample: labels and value, or the same already rendered by sampleText. */
export type Sample = { labels?: Record<string, string>; value: number } | string;

export interface MetricFamily {
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

/** The content type Prometheus expects for this format. */
export const TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** A label value with `\`, `"` and newlines escaped. */
export function escapeLabel(value: string): string {
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

/** A sample's labels and value as exposition text: `{k="v",…} value` (no name). */
export function sampleText(labels: Record<string, string> | undefined, value: number): string {
  let line = "";
  if (labels) {
    let sep = "{";
    for (const k in labels) {
      line += `${sep}${k}="${escapeLabel(labels[k]!)}"`;
      sep = ",";
    }
    if (sep === ",") line += "}";
  }
  return `${line} ${formatValue(value)}`;
}

/** One family's exposition text, newline-terminated. A family without samples still says HELP
 * and TYPE, so a metric that is zero series today (no PF planned) is known to exist. */
export function renderFamily(family: MetricFamily): string {
  let text = `# HELP ${family.name} ${escapeHelp(family.help)}\n# TYPE ${family.name} ${family.type}\n`;
  for (const sample of family.samples) {
    text += `${family.name}${typeof sample === "string" ? sample : sampleText(sample.labels, sample.value)}\n`;
  }
  return text;
}
