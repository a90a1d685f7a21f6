// The read-only floor of list-devices and verify-iommu: what any program must do to know a host's
// PCI functions and their IOMMU groups — list /sys/bus/pci/devices, read each function's `uevent`
// (ids, class, driver, modalias in one read) and its `iommu_group` link — and nothing else. The
// scale benchmark runs it with the charm's own runtime between the packed dispatch's runs and
// prints how many functions it read. Usage: node floor.mjs [root]
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

const bus = `${process.argv[2] ?? ""}/sys/bus/pci/devices`;
let functions = 0;
let grouped = 0;
for (const name of readdirSync(bus)) {
  if (readFileSync(`${bus}/${name}/uevent`, "latin1").includes("PCI_ID=")) functions++;
  try {
    if (readlinkSync(`${bus}/${name}/iommu_group`)) grouped++;
  } catch {
    // No IOMMU group: nothing more to read.
  }
}
process.stdout.write(`${functions}\n`);
process.stderr.write(`${grouped} in IOMMU groups\n`);
