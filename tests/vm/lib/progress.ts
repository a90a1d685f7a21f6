/**
 * One line per step of a VM scenario, printed as the step starts: under TCG a boot or an install
 * hook takes minutes, and vitest reports a test only once it has finished. Written straight to
 * stderr (one plain line, no vitest "stdout |" header), with the wall-clock time so a slow step
 * shows in a redirected log. The demo, which tells its own story, turns these off.
 */

type Sink = (line: string) => void;

let sink: Sink | null = (line) => {
  process.stderr.write(`${line}\n`);
};

/** Says what the bed is doing now. */
export function progress(text: string): void {
  const clock = new Date().toTimeString().slice(0, 8);
  sink?.(`[vm ${clock}] ${text}`);
}

/** Sends progress lines elsewhere, or nowhere (null). */
export function setProgressSink(next: Sink | null): void {
  sink = next;
}

/** Seconds, one decimal, for "booted in 41.2 s". */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
