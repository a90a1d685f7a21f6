// Entry of dist/exporter.js, run by systemd (EXPORTER_OWNED.unit) with the charm's runtime:
//   node dist/exporter.js --listen 127.0.0.1:9847
// PCI_PASSTHROUGH_ROOT moves the host root as for the charm (tests, the demo's sandbox).
import { rootFromEnv } from "../host/root";
import { Exporter } from "./server";

/** `--listen HOST:PORT` → its parts; throws naming the argument. */
export function parseListen(argv: readonly string[]): { host: string; port: number } {
  const i = argv.indexOf("--listen");
  const value = i >= 0 ? argv[i + 1] : undefined;
  const match = value ? /^(.+):(\d{1,5})$/.exec(value) : null;
  const port = match ? Number(match[2]) : Number.NaN;
  if (!match || port < 1 || port > 65535) {
    throw new Error(`usage: exporter.js --listen HOST:PORT (got ${JSON.stringify(value ?? null)})`);
  }
  return { host: match[1]!.replace(/^\[(.*)\]$/, "$1"), port };
}

/** Starts the exporter; resolves once it listens. */
export function run(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const { host, port } = parseListen(argv);
  const exporter = new Exporter(rootFromEnv(), (m) =>
    console.error(`pci-passthrough-exporter: ${m}`),
  );
  const server = exporter.server();
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      console.error(
        `pci-passthrough-exporter: listening on ${host}:${port} (root ${exporter.root})`,
      );
      resolve();
    });
  });
}

run().catch((error: Error) => {
  console.error(`pci-passthrough-exporter: ${error.message}`);
  process.exitCode = 1;
});
