// Failures the tests provoke on purpose make main() write what Juju would keep to stderr (an
// action's failure message). Captured, asserted on, and kept out of the test log, where they would
// read as errors of a passing run.
import { vi } from "vitest";

/** Runs `work` with process.stderr captured; returns its result and what it wrote there. */
export function capturingStderr<T>(work: () => T): { result: T; stderr: string } {
  const chunks: string[] = [];
  const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));
    return true;
  });
  try {
    const result = work();
    return { result, stderr: chunks.join("") };
  } finally {
    spy.mockRestore();
  }
}
