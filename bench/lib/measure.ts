// Small timing helpers: wall time of a child process, its peak RSS, medians.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/** Middle value (mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function min(values: readonly number[]): number {
  return values.reduce((a, b) => Math.min(a, b), Number.POSITIVE_INFINITY);
}

export function max(values: readonly number[]): number {
  return values.reduce((a, b) => Math.max(a, b), Number.NEGATIVE_INFINITY);
}

/** A command to run as a child: argv and environment. */
export interface Command {
  argv: string[];
  env: NodeJS.ProcessEnv;
}

export interface RunResult {
  ms: number;
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs the command once and returns its wall time in milliseconds. */
export function timeRun(cmd: Command): RunResult {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd.argv[0]!, cmd.argv.slice(1), {
    env: cmd.env,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 256 * 1024 * 1024,
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return { ms, exitCode: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** How peak RSS is measured on this machine. */
export const RSS_METHOD = fs.existsSync("/usr/bin/time")
  ? "GNU time (/usr/bin/time -f %M: ru_maxrss of the child or the largest process it waited for, in KiB)"
  : null;

/** Peak RSS of one run in MiB, through GNU time; null when /usr/bin/time is missing. */
export function peakRssMiB(cmd: Command): number | null {
  if (!RSS_METHOD) return null;
  const out = path.join(os.tmpdir(), `pci-bench-rss-${process.pid}.txt`);
  const r = spawnSync("/usr/bin/time", ["-f", "%M", "-o", out, ...cmd.argv], {
    env: cmd.env,
    stdio: ["ignore", "ignore", "ignore"],
  });
  if (r.status !== 0) throw new Error(`${cmd.argv.join(" ")} exited ${r.status} under time`);
  const kib = Number(fs.readFileSync(out, "utf8").trim().split("\n").pop());
  fs.rmSync(out, { force: true });
  return kib / 1024;
}

/** One in-process call and its wall time. */
export function timed<T>(fn: () => T): { ms: number; value: T } {
  const t0 = process.hrtime.bigint();
  const value = fn();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, value };
}

/** Median wall time of an in-process function over `runs` runs (after one warm-up). */
export function timeInProcess<T>(
  runs: number,
  fn: () => T,
): { ms: number; all: number[]; last: T } {
  let last = fn();
  const all: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    last = fn();
    all.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return { ms: median(all), all, last };
}

/** The machine, for the report. */
export function machineInfo(): Record<string, string | number> {
  const cpu = os.cpus()[0]?.model ?? "unknown";
  return {
    cpu,
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    os: osRelease(),
    loadAverage: os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" "),
  };
}

function osRelease(): string {
  try {
    const text = fs.readFileSync("/etc/os-release", "utf8");
    return /^PRETTY_NAME="?([^"\n]*)"?/m.exec(text)?.[1] ?? "unknown";
  } catch {
    return "unknown";
  }
}

export interface CpuTimed {
  /** Wall time, user CPU and system CPU in ms (children included: the hook tools, cat, uname). */
  realMs: number;
  userMs: number;
  sysMs: number;
  exitCode: number;
}

/** Runs the command under bash's `time` builtin (millisecond resolution, rusage of the command
 * and every descendant it waited for). Output is discarded: check it with timeRun first. */
export function timeWithCpu(cmd: Command): CpuTimed {
  const script = 'TIMEFORMAT="%3R %3U %3S"; { time "$@" >/dev/null 2>&1; } 2>&1';
  const r = spawnSync("/bin/bash", ["-c", script, "bench", ...cmd.argv], {
    env: cmd.env,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  const [real, user, sys] = (r.stdout ?? "").trim().split("\n").pop()!.split(" ").map(Number);
  return {
    realMs: real! * 1000,
    userMs: user! * 1000,
    sysMs: sys! * 1000,
    exitCode: r.status ?? -1,
  };
}
