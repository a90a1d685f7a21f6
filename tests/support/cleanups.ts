// vitest wiring for what a test leaves behind (temp trees, processes): push a cleanup while the test
// runs; each one runs after it, in the order pushed.
import { afterEach } from "vitest";

/** Returns the list this file's tests push their cleanups onto; emptied after every test. */
export function useCleanups(): Array<() => void> {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const c of cleanups.splice(0)) c();
  });
  return cleanups;
}
