// The README's first command: the packed charm deployed into a real Linux kernel with an emulated
// Intel IOMMU (QEMU, no KVM needed), on a host with two identical e1000e NICs, a boot VGA, a NIC
// the host uses and a shared IOMMU group. Prints what an operator would see: the devices, their
// drivers and IOMMU groups before and after, and the unit's status along the way.
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import * as path from "node:path";
import { bootGuest, type Guest } from "../tests/vm/lib/guest";
import { deployCharmInGuest, type GuestCharm } from "../tests/vm/lib/guest-charm";
import { VM_CACHE } from "../tests/vm/lib/paths";
import type { BedKernel } from "../tests/vm/lib/require-tools";
import { device, FULL } from "../tests/vm/lib/topologies";

const SELECTED = device(FULL, "twinA").address;

interface Row {
  address: string;
  ids: string;
  cls: string;
  driver: string;
  group: string;
}

/** One line per function: address ids class driver group (shell, so `${…}` are sh expansions). */
const LIST_DEVICES_SH = [
  "for d in /sys/bus/pci/devices/*; do",
  "  a=$(basename $d); v=$(cat $d/vendor); p=$(cat $d/device); c=$(cat $d/class)",
  "  dr=-; [ -e $d/driver ] && dr=$(basename $(readlink $d/driver))",
  "  g=-; [ -e $d/iommu_group ] && g=$(basename $(readlink $d/iommu_group))",
  '  echo "$a $(echo $v:$p | sed s/0x//g) $(echo $c | sed s/0x//) $dr $g"',
  "done",
].join("\n");

/** The guest's PCI functions as sysfs shows them (what `lspci -nnk` would tell). */
async function devices(guest: Guest): Promise<Map<string, Row>> {
  const out = await guest.exec(LIST_DEVICES_SH);
  const rows = new Map<string, Row>();
  for (const line of out.trim().split("\n")) {
    const [address, ids, cls, driver, group] = line.split(" ") as [
      string,
      string,
      string,
      string,
      string,
    ];
    rows.set(address, { address, ids, cls, driver, group });
  }
  return rows;
}

/** Slots 10, 11 and 13 are the test bed's own virtio devices (host root, command channel, share). */
const BED_SLOTS = ["0000:00:10.0", "0000:00:11.0", "0000:00:13.0"];

function role(address: string): string {
  if (BED_SLOTS.includes(address)) return "(the test bed's own virtio device)";
  return FULL.devices.find((d) => d.address === address)?.role ?? "";
}

function table(before: Map<string, Row>, after: Map<string, Row>): string {
  const lines = [
    ["address", "ids", "class", "group", "driver before", "driver after", "what it is"],
  ];
  for (const [address, b] of before) {
    const a = after.get(address);
    const changed = a && a.driver !== b.driver ? " *" : "";
    lines.push([
      address,
      b.ids,
      b.cls,
      b.group,
      b.driver,
      `${a?.driver ?? "?"}${changed}`,
      role(address),
    ]);
  }
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  return lines
    .map((l) =>
      l
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

async function step(unit: GuestCharm, title: string, event: Parameters<GuestCharm["dispatch"]>[0]) {
  const r = await unit.dispatch(event);
  const state = unit.sim.readState();
  console.log(`\n$ ${title}`);
  if (r.exitCode !== 0) throw new Error(`dispatch failed (${r.exitCode}): ${r.stderr}`);
  if (typeof event !== "string" && event.name.endsWith("-action")) {
    const a = state.lastAction!;
    const message = typeof a.results.message === "string" ? `: ${a.results.message}` : "";
    console.log(a.failed ? `  action failed: ${a.failureMessage}` : `  action completed${message}`);
    return a;
  }
  console.log(`  unit status: ${state.unitStatus.status}: ${state.unitStatus.message}`);
  return null;
}

async function main(): Promise<void> {
  const kernel = JSON.parse(readFileSync(path.join(VM_CACHE, "kernel.json"), "utf8")) as BedKernel;
  const share = path.join(VM_CACHE, "run", "demo");
  rmSync(share, { recursive: true, force: true });
  mkdirSync(share, { recursive: true });
  console.log(`Booting Linux ${kernel.release} under QEMU (q35, intel-iommu, TCG)...`);
  const guest = await bootGuest({
    topology: FULL,
    iommu: "intel",
    name: "demo",
    kernel: kernel.kernel,
    initrd: kernel.initramfs,
    root: { kind: "bed", modules: kernel.modules },
    // Booted with what the charm's grub drop-in asks for, as after the reboot it requires.
    append: ["iommu=pt"],
    share,
  });
  try {
    console.log(
      `Booted in ${(guest.bootMs / 1000).toFixed(1)} s: ${await guest.exec("cat /proc/cmdline")}`,
    );
    const uplink = device(FULL, "uplink").address;
    const ifname = (await guest.exec(`ls /sys/bus/pci/devices/${uplink}/net`)).trim();
    await guest.exec(`ip addr add 192.0.2.10/24 dev ${ifname} && ip link set ${ifname} up`);
    const before = await devices(guest);

    // This guest's root is the host's, which has no grub: recorders stand in for update-grub and
    // update-initramfs here (the test suite's tier 2 runs the real ones and reboots).
    const unit = await deployCharmInGuest({
      guest,
      share,
      config: { devices: SELECTED },
      recordedCommands: ["update-grub", "update-initramfs"],
    });
    await step(
      unit,
      `juju deploy pci-passthrough --config devices=${SELECTED}   (install)`,
      "install",
    );
    console.log("  /etc/udev/rules.d/40-pci-passthrough.rules:");
    for (const line of (await guest.readFile("/etc/udev/rules.d/40-pci-passthrough.rules")).split(
      "\n",
    )) {
      if (line.startsWith("ACTION")) console.log(`    ${line}`);
    }
    await step(unit, "juju run pci-passthrough/0 rebind dry-run=true", {
      name: "rebind-action",
      params: { "dry-run": true },
    });
    const refused = await step(
      unit,
      `juju run pci-passthrough/0 rebind devices=${uplink}   (the NIC in use)`,
      {
        name: "rebind-action",
        params: { devices: uplink },
      },
    );
    if (refused && !refused.failed) throw new Error("the NIC in use was not refused");
    await step(unit, "juju run pci-passthrough/0 rebind   (the configured selection, now)", {
      name: "rebind-action",
      params: {},
    });
    await step(unit, "juju run pci-passthrough/0 verify-iommu", {
      name: "verify-iommu-action",
      params: {},
    });
    await step(unit, "update-status", "update-status");
    const after = await devices(guest);
    console.log(`\nDevices before and after (* = changed):\n${table(before, after)}`);
    const group = after.get(SELECTED)?.group;
    console.log(
      `\n/dev/vfio/${group}: ${(await guest.run(`test -e /dev/vfio/${group}`)).exitCode === 0 ? "present" : "absent"}`,
    );
    if (after.get(SELECTED)?.driver !== "vfio-pci")
      throw new Error(`${SELECTED} is not on vfio-pci`);
    const twin = device(FULL, "twinB").address;
    if (after.get(twin)?.driver !== "e1000e") throw new Error(`${twin} lost its e1000e driver`);
    console.log(`\n${SELECTED} is on vfio-pci; its identical twin ${twin} kept e1000e.`);
  } finally {
    await guest.shutdown();
  }
}

main().catch((e) => {
  console.error(`demo failed: ${(e as Error).message}`);
  process.exitCode = 1;
});
