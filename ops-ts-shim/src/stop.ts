// Lets a handler that changes the host step by step learn, between steps, that it was asked to
// stop (SIGTERM: the unit agent's service stopping, the host shutting down, kill by hand; SIGINT),
// so it can finish or undo the step it is in instead of dying half way through it.
//
// A synchronous handler never returns to Node's event loop, and Node runs signal listeners only
// from that loop: a listener's flag would be set after the handler ended, and without a listener
// the default action kills the process at once, mid-step. So a stoppable dispatch runs in a
// worker thread: the main thread stays in its event loop, takes the signal, and sets a flag in
// memory both threads share; the handler reads it synchronously (stopSignal()). The process, its
// pid and the tools it runs are the same (threads share one process), so Juju's kill still
// reaches the process it started. That kill (`juju cancel-task`, a task timeout) is SIGKILL
// (juju/juju worker/uniter/runner: ps.Process.Kill()), which no program can catch or delay.
// node:worker_threads is required where it is used: every dispatch loads this file (main.ts), and
// only a stoppable action needs the module.
type WorkerThreads = typeof import("node:worker_threads");
const workerThreads = (): WorkerThreads => require("node:worker_threads") as WorkerThreads;

/** The workerData key that carries the shared stop flag. */
const STOP_FLAG = "opsTsStopFlag";
/** The signals a stoppable dispatch takes, and the number the flag stores for each. */
const SIGNALS = { SIGTERM: 15, SIGINT: 2 } as const;
type StopSignal = keyof typeof SIGNALS;

function sharedFlag(): Int32Array | null {
  const buffer = (workerThreads().workerData as Record<string, unknown> | null)?.[STOP_FLAG];
  return buffer instanceof SharedArrayBuffer ? new Int32Array(buffer) : null;
}

/**
 * The signal that asked this dispatch to stop (SIGTERM, SIGINT), or null. Always null outside a
 * stoppable dispatch (the signal's default action ends such a process at once).
 */
export function stopSignal(): StopSignal | null {
  const flag = sharedFlag();
  const value = flag ? Atomics.load(flag, 0) : 0;
  if (value === 0) return null;
  return (Object.keys(SIGNALS) as StopSignal[]).find((s) => SIGNALS[s] === value) ?? "SIGTERM";
}

/**
 * Runs `script` (the charm's own entry file) again in a worker thread, with a stop flag it reads
 * through stopSignal(), and keeps this thread in the event loop to take SIGTERM and SIGINT. The
 * worker's exit code becomes the process's. Returns at once.
 */
export function dispatchStoppable(script: string, dispatchPath: string): void {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  for (const signal of Object.keys(SIGNALS) as StopSignal[]) {
    process.on(signal, () => {
      if (Atomics.load(flag, 0) === 0) {
        // stderr is kept with the action's results: the operator sees the stop was heard.
        process.stderr.write(
          `${dispatchPath}: ${signal} received: finishing or undoing the step in progress, then stopping\n`,
        );
      }
      Atomics.store(flag, 0, SIGNALS[signal]);
    });
  }
  const worker = new (workerThreads().Worker)(script, { workerData: { [STOP_FLAG]: flag.buffer } });
  worker.on("error", (e) => {
    process.stderr.write(`${dispatchPath} failed in its worker thread: ${e.stack ?? e.message}\n`);
    process.exitCode = 1;
  });
  worker.on("exit", (code) => {
    process.exitCode ||= code;
  });
}
