// The exporter's option, parsed on its own (config.ts parses the host-preparation options).

import type { ConfigError } from "./types";

/** The port the exporter listens on by default (config.yaml's default of `exporter-port`). */
export const DEFAULT_EXPORTER_PORT = 9847;

/** `exporter-port` → a port, or the error that names the option, the value and the fix. */
export function parseExporterPort(raw: unknown): { port: number } | { error: ConfigError } {
  const value = raw === null || raw === undefined ? DEFAULT_EXPORTER_PORT : raw;
  if (typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 65535) {
    return { port: value };
  }
  return {
    error: {
      option: "exporter-port",
      value: String(value),
      problem: "is not a TCP port (an integer from 1 to 65535)",
      fix: `set it to a free port on 127.0.0.1, e.g. \`juju config <app> exporter-port=${DEFAULT_EXPORTER_PORT}\``,
    },
  };
}
