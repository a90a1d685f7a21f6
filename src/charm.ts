// Entry point bundled into dist/charm.js; ./dispatch runs it for every hook and action.
import { main } from "ops-ts-shim";
import { PciPassthroughCharm } from "./pci-passthrough-charm";

process.exitCode = main(PciPassthroughCharm);
