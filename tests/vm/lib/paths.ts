/** Where the VM test bed keeps things on the host: the repo, the image cache, the artifacts. */

import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (this file is tests/vm/lib/paths.ts). */
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** Kernel, initramfs and root images, keyed by kernel release (scripts/vm/prepare.sh). */
export const VM_CACHE = process.env.VM_CACHE_DIR
  ? path.resolve(process.env.VM_CACHE_DIR)
  : path.join(REPO, ".cache/vm");

/** Console logs of failed tests and failed boots. */
export const ARTIFACTS = path.join(REPO, "test-artifacts/vm");

/** The scripts that build the bed. */
export const SCRIPTS = path.join(REPO, "scripts/vm");
