// The README's first command, after scripts/demo.sh has packed the charm and built the guest's
// disk: the packed charm deployed on a fresh Debian compute host under QEMU (emulated Intel IOMMU,
// no KVM needed), through the real reboot it asks for. Boot 1 has no IOMMU parameters; the charm
// writes its files and runs the guest's own update-grub and update-initramfs, and says a reboot is
// required. The reboot starts the kernel, command line and initrd that the regenerated grub.cfg
// names; the selected NIC is on vfio-pci before any charm code runs, its identical twin is not,
// and the unit turns active. Every phase is printed as it starts, with the time since demo.sh
// started; each hook with the unit's status after it; each action with its results.
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { stringify } from "yaml";
import { novaComputeContext, renderNovaConf } from "../tests/support/nova-compute";
import {
  checkDebianImage,
  copyImage,
  type DebianImage,
  nextBoot,
} from "../tests/vm/lib/debian-image";
import { bootGuest, type Guest } from "../tests/vm/lib/guest";
import { deployCharmInGuest, type GuestCharm, JUJU_CHARM_DIR } from "../tests/vm/lib/guest-charm";
import { VM_CACHE } from "../tests/vm/lib/paths";
import { setProgressSink } from "../tests/vm/lib/progress";
import { EMULATOR_KERNEL_ARGS } from "../tests/vm/lib/qemu-args";
import { device, FULL } from "../tests/vm/lib/topologies";

const started = Number(process.env.DEMO_STARTED_MS) || Date.now();
const selected = device(FULL, "twinA").address;
const twin = device(FULL, "twinB").address;
const uplink = device(FULL, "uplink").address;
const MANAGEMENT_ADDRESS = "192.0.2.10/24";
/** The nova-compute relation as `juju integrate` makes it (one principal unit on this machine). */
const NOVA_RELATION_ID = 1;
const NOVA_UNIT = "nova-compute/0";

/** What each device of the guest is, as an operator would say it. */
const WHAT_IT_IS: Record<string, string> = {
  bootVga: "graphics: the host's console (boot VGA)",
  vgaA: "graphics card, same ids as the console's",
  vgaB: "graphics card, same ids as the console's",
  twinA: "NIC: the one `devices` selects, by address",
  twinB: `NIC identical to ${selected}: stays with the host`,
  bridge: "PCIe-to-PCI bridge (no ACS: one IOMMU group below it)",
  sharedA: "NIC behind that bridge, in its IOMMU group",
  sharedB: "NIC behind that bridge, in its IOMMU group",
  uplink: `NIC carrying the host's management network (${MANAGEMENT_ADDRESS})`,
  gpu: "display function .0 of a two-function slot",
  gpuAudio: "audio function .1 of that slot (like a GPU's HDMI audio)",
};
/** The guest's own plumbing at the slots the test bed keeps for itself (tests/vm/lib/qemu-args). */
const PLUMBING: Record<string, string> = {
  "0000:00:10.0": "virtio 9p (the test bed's; unused by this guest)",
  "0000:00:11.0": "virtio-serial: the demo's command channel into the guest",
  "0000:00:12.0": "virtio disk: the host's root disk (/dev/vda)",
  "0000:00:13.0": "virtio 9p: the folder shared with the simulated Juju unit",
};

function elapsed(): string {
  const s = Math.floor((Date.now() - started) / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

/** A phase of the demo, printed as it starts. */
function phase(title: string): void {
  console.log(`\n[${elapsed()}] ${title}`);
}

/** Lines under the current phase. */
function say(text: string, indent = "  "): void {
  for (const line of text.replace(/\n$/, "").split("\n")) console.log(`${indent}${line}`);
}

interface Row {
  driver: string;
  group: string;
  ids: string;
  description: string;
}

/** One line per function (address, ids, driver, IOMMU group), then `lspci -D`'s lines. */
const LIST_DEVICES_SH = `for d in /sys/bus/pci/devices/*; do
  v=$(cat $d/vendor) p=$(cat $d/device) dr=- g=-
  [ -e $d/driver ] && dr=$(readlink $d/driver)
  [ -e $d/iommu_group ] && g=$(readlink $d/iommu_group)
  echo "\${d##*/} \${v#0x}:\${p#0x} \${dr##*/} \${g##*/}"
done
echo --
lspci -D`;

async function devices(guest: Guest): Promise<Map<string, Row>> {
  const [sysfs = "", lspci = ""] = (await guest.exec(LIST_DEVICES_SH)).split("--\n");
  // "0000:00:1f.2 SATA controller: Intel Corporation 82801IR/IO/IH …": the class, for chipset parts.
  const classes = new Map(
    lspci.split("\n").map((l) => [l.slice(0, 12), l.slice(13).split(":")[0] ?? ""] as const),
  );
  const rows = new Map<string, Row>();
  for (const line of sysfs.trim().split("\n")) {
    const [address = "", ids = "", driver = "", group = ""] = line.split(" ");
    rows.set(address, { ids, driver, group, description: classes.get(address) ?? "" });
  }
  return rows;
}

/** What a device is: the demo's words for the devices it added, else lspci's class. */
function whatItIs(address: string, row: Row): string {
  const spec = FULL.devices.find((d) => d.address === address);
  if (spec) return WHAT_IT_IS[spec.key] ?? spec.key;
  return PLUMBING[address] ?? `chipset: ${row.description}`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

function deviceTable(before: Map<string, Row>, after?: Map<string, Row>): string {
  const head = after
    ? ["address", "ids", "driver at boot 1", "at boot 2", "IOMMU group", "what it is"]
    : ["address", "ids", "driver", "what it is"];
  const rows = [head];
  for (const [address, b] of before) {
    const a = after?.get(address);
    rows.push(
      a
        ? [address, b.ids, b.driver, a.driver === b.driver ? a.driver : `${a.driver} *`, a.group]
        : [address, b.ids, b.driver],
    );
    rows.at(-1)!.push(whatItIs(address, b));
  }
  return table(rows);
}

/** Runs a hook as Juju would: its name as it starts, then how long it took and the unit's status.
 * `silence` announces a long wait before it starts, so a quiet terminal is not taken for a hang. */
async function hook(
  unit: GuestCharm,
  event: string | { name: string; relationId: number; remoteUnit: string },
  silence?: string,
): Promise<void> {
  const name = typeof event === "string" ? event : event.name;
  if (silence) say(`[${elapsed()}] ${name} next: ${silence}`);
  process.stdout.write(`  [${elapsed()}] ${name} ... `);
  const run = await unit.dispatch(event);
  if (run.exitCode !== 0) throw new Error(`the ${name} hook failed:\n${unit.explain(run)}`);
  const { status, message } = unit.status();
  console.log(`${(run.ms / 1000).toFixed(0)} s; unit status: ${status}: ${message}`);
}

/** Runs an action as `juju run` would; returns whether it failed, its message and its results. */
async function action(unit: GuestCharm, name: string, params: Record<string, unknown> = {}) {
  const { dispatch, action: a } = await unit.action(name, params);
  if (dispatch.exitCode !== 0)
    throw new Error(`the ${name} action crashed:\n${unit.explain(dispatch)}`);
  const message = typeof a.results.message === "string" ? a.results.message : "";
  return {
    failed: a.failed,
    message: a.failed ? (a.failureMessage ?? message) : message,
    results: a.results,
  };
}

/** The management NIC, configured as the host's network configuration would at each boot. */
async function configureManagementNic(guest: Guest): Promise<string> {
  const ifname = (await guest.exec(`ls /sys/bus/pci/devices/${uplink}/net`)).trim();
  await guest.exec(`ip addr add ${MANAGEMENT_ADDRESS} dev ${ifname} && ip link set ${ifname} up`);
  return ifname;
}

/** The demo's compute host: one disk booted again and again, and the simulated unit's folder. */
interface Host {
  disk: string;
  run: string;
  share: string;
  /** The running boot (shut down at the end, whatever happened). */
  guest?: Guest;
}

let emulatorArgsExplained = false;

async function boot(host: Host, name: string, kernel: string, initrd: string, cmdline: string) {
  host.guest = await bootGuest({
    topology: FULL,
    iommu: "intel",
    name,
    kernel,
    initrd,
    cmdline,
    root: { kind: "disk", image: host.disk },
    share: host.share,
    memoryMb: 2048,
  });
  const guest = host.guest;
  await guest.exec("udevadm settle", { timeoutMs: 120_000 });
  const cmdlineNow = (await guest.exec("cat /proc/cmdline")).trim();
  say(`booted in ${(guest.bootMs / 1000).toFixed(0)} s; /proc/cmdline: ${cmdlineNow}`);
  if (!emulatorArgsExplained && EMULATOR_KERNEL_ARGS.some((w) => cmdlineNow.includes(w))) {
    emulatorArgsExplained = true;
    say(
      `(${EMULATOR_KERNEL_ARGS.join(" ")} is the test bed's, added to every boot, not the charm's: under QEMU's emulation on a busy machine the kernel's early check that the timer interrupt arrives through the emulated IOMMU can time out and panic; a real machine passes it. tests/vm/lib/qemu-args.ts)`,
    );
  }
  return guest;
}

async function firstBoot(host: Host, image: DebianImage): Promise<Map<string, Row>> {
  phase(
    `Boot 1: a fresh compute host. Debian ${image.release} on QEMU (q35, emulated Intel IOMMU, TCG), booted without intel_iommu=on`,
  );
  const guest = await boot(
    host,
    "demo-boot1",
    image.kernel,
    image.initrd,
    "console=ttyS0 root=/dev/vda rw panic=-1",
  );
  const ifname = await configureManagementNic(guest);
  say(`the host's management network: ${MANAGEMENT_ADDRESS} on ${ifname} (${uplink}), up`);
  const before = await devices(guest);
  say(deviceTable(before));
  say("no IOMMU groups: without intel_iommu=on the kernel leaves the IOMMU off.");
  return before;
}

async function deploy(host: Host, guest: Guest): Promise<GuestCharm> {
  phase(
    `juju deploy pci-passthrough --config devices=${selected}; juju integrate pci-passthrough:nova-compute nova-compute:ephemeral-backend`,
  );
  say(
    "A subordinate has no unit until juju integrate: then Juju runs install, config-changed and start on the compute host, and the nova-compute relation's hooks.",
  );
  const unit = await deployCharmInGuest({
    guest,
    share: host.share,
    config: { devices: selected },
    // Only with VM_TOOLS_IN_GUEST=1: this Debian guest has no node but the charm's own.
    toolNode: `${JUJU_CHARM_DIR}/runtime/bin/node`,
  });
  await hook(
    unit,
    "install",
    "it writes the charm's files and runs the guest's own update-grub and update-initramfs: about 2 minutes under emulation, and nothing prints until it ends",
  );
  for (const event of ["config-changed", "start"]) await hook(unit, event);
  unit.sim.updateState((s) => {
    s.relations.push({
      id: NOVA_RELATION_ID,
      endpoint: "nova-compute",
      remoteApp: "nova-compute",
      remoteUnits: [NOVA_UNIT],
      remoteUnitsData: { [NOVA_UNIT]: {} },
      remoteAppData: {},
      localUnitData: {},
      localAppData: {},
    });
  });
  for (const name of ["nova-compute-relation-joined", "nova-compute-relation-changed"]) {
    await hook(unit, { name, relationId: NOVA_RELATION_ID, remoteUnit: NOVA_UNIT });
  }
  showWhatNovaGets(unit);
  return unit;
}

/** What the charm sent over the relation, and the [pci] lines nova-compute renders from it into
 * /etc/nova/nova.conf: charm-nova-compute's own merge and template, emulated as the contract tests
 * emulate them (tests/support/nova-compute.ts). */
function showWhatNovaGets(unit: GuestCharm): void {
  const relation = unit.sim.readState().relations.find((r) => r.id === NOVA_RELATION_ID);
  const data = relation?.localUnitData ?? {};
  const view = novaComputeContext([{ endpoint: "ephemeral-backend", units: [data] }]);
  const conf = renderNovaConf(view);
  const pci = conf.slice(conf.lastIndexOf("[pci]"));
  say(
    `sent to ${NOVA_UNIT} (subordinate_configuration), and the [pci] lines nova-compute renders from it into /etc/nova/nova.conf:`,
  );
  say(
    pci.trim() === "[pci]" ? "[pci]   (empty: nothing is offered before the reboot)" : pci,
    "    ",
  );
}

/** The lines of a file that are not comments. */
const settings = (text: string, keep = (l: string) => l !== "" && !l.startsWith("#")) =>
  text.split("\n").filter(keep).join("\n");

async function showInstalledFiles(guest: Guest): Promise<void> {
  phase("What install wrote");
  say("/etc/default/grub.d/99-pci-passthrough.cfg:");
  say(settings(await guest.readFile("/etc/default/grub.d/99-pci-passthrough.cfg")), "    ");
  say("/etc/udev/rules.d/40-pci-passthrough.rules:");
  const rules = await guest.readFile("/etc/udev/rules.d/40-pci-passthrough.rules");
  say(
    settings(rules, (l) => l.startsWith("ACTION")),
    "    ",
  );
  const others = await guest.exec(
    "ls -1 /etc/modprobe.d/pci-passthrough.conf /etc/initramfs-tools/hooks/pci-passthrough /usr/local/lib/pci-passthrough/vfio-bind 2>/dev/null || true",
  );
  say(`and ${others.trim().split("\n").join(", ")}`);
}

/** Powers the host off and boots what its regenerated grub.cfg names, as its firmware would. */
async function reboot(host: Host, unit: GuestCharm): Promise<Map<string, Row>> {
  phase("Reboot: the guest powers off; QEMU starts what the regenerated grub.cfg names");
  await host.guest?.shutdown({ clean: true });
  const next = nextBoot(host.disk, host.run, "boot2");
  say(`grub.cfg's default entry "${next.entry.title}":`);
  say(`linux  ${next.entry.kernel} ${next.entry.args}`, "    ");
  say(`initrd ${next.entry.initrd}`, "    ");
  // lsinitramfs on the host: the guest made the initrd; reading it here is fast.
  const initrd = execFileSync("lsinitramfs", [next.initrd], { encoding: "utf8" })
    .split("\n")
    .filter((f) => /vfio-pci\.ko|pci-passthrough/.test(f));
  say(`in that initrd: ${initrd.join(", ")}`);
  const callsBefore = unit.sim.readState().calls.length;

  phase("Boot 2: the new kernel command line, and the initrd with the charm's udev rule");
  const guest = await boot(host, "demo-boot2", next.kernel, next.initrd, next.entry.args);
  unit.reattach(guest);
  const after = await devices(guest);
  const override = await guest.readFile(`/sys/bus/pci/devices/${selected}/driver_override`);
  const vfioNode = `/dev/vfio/${after.get(selected)?.group}`;
  const hasNode = (await guest.run(`test -e ${vfioNode}`)).exitCode === 0;
  say(
    `${selected}: ${after.get(selected)?.driver} (driver_override=${override.trim()}), ${vfioNode} ${hasNode ? "present" : "absent"}; its twin ${twin}: ${after.get(twin)?.driver}`,
  );
  const calls = unit.sim.readState().calls.length - callsBefore;
  say(
    `hook tools called since the reboot: ${calls}. No charm code has run in this boot: the udev rule, in the initramfs, bound it.`,
  );
  if (after.get(selected)?.driver !== "vfio-pci" || calls !== 0) {
    throw new Error(`${selected} is not on vfio-pci after the reboot, or the charm ran`);
  }
  if (after.get(twin)?.driver !== "e1000e") throw new Error(`${twin} lost its e1000e driver`);
  await configureManagementNic(guest);
  return after;
}

async function operate(unit: GuestCharm): Promise<void> {
  phase("The next hook (update-status) sees the new kernel and bindings");
  await hook(unit, "update-status");
  showWhatNovaGets(unit);

  phase("juju run pci-passthrough/0 nova-config   (what the controller needs)");
  const nova = await action(unit, "nova-config");
  if (nova.failed) throw new Error(`nova-config failed: ${nova.message}`);
  say(nova.message);
  say(
    stringify(
      { controller: nova.results.controller, flavor: nova.results.flavor },
      { lineWidth: 0 },
    ),
    "    ",
  );

  phase("juju run pci-passthrough/0 verify-iommu");
  const verify = await action(unit, "verify-iommu");
  if (verify.failed) throw new Error(`verify-iommu failed after the reboot: ${verify.message}`);
  say("completed; its results:");
  say(stringify(verify.results, { lineWidth: 0 }), "    ");

  phase(`juju run pci-passthrough/0 rebind devices=${uplink}   (the management NIC)`);
  const refused = await action(unit, "rebind", { devices: uplink });
  if (!refused.failed) throw new Error(`rebind took ${uplink}, the NIC the host uses`);
  say(`action failed, nothing changed: ${refused.message}`);

  phase(`juju run pci-passthrough/0 rebind devices=${selected} to=host dry-run=true`);
  const dry = await action(unit, "rebind", { devices: selected, to: "host", "dry-run": true });
  say(dry.message);
  const writes = Object.values(dry.results.writes as Record<string, Record<string, string>>);
  writes.forEach((w, i) => {
    say(`${i + 1}. write ${w.value} to ${w.path}`, "    ");
  });
}

async function main(): Promise<void> {
  // The bed's own progress lines would repeat what this story prints.
  setProgressSink(null);
  const built = checkDebianImage();
  if (!built.ok) throw new Error(built.reason);
  const run = path.join(VM_CACHE, "run", "demo");
  const host: Host = { run, share: path.join(run, "share"), disk: path.join(run, "root.img") };
  rmSync(run, { recursive: true, force: true });
  mkdirSync(host.share, { recursive: true });
  copyImage(built.image, host.disk);
  try {
    const before = await firstBoot(host, built.image);
    const unit = await deploy(host, host.guest!);
    await showInstalledFiles(host.guest!);
    phase("juju run pci-passthrough/0 verify-iommu   (before the reboot)");
    const early = await action(unit, "verify-iommu");
    say(`${early.failed ? "action failed" : "completed"}: ${early.message}`);
    const after = await reboot(host, unit);
    await operate(unit);

    phase("Devices at boot 1 (before the charm) and boot 2 (after its reboot); * = changed");
    say(deviceTable(before, after));
    const status = unit.status();
    if (status.status !== "active") throw new Error(`the unit ended ${status.status}`);
    phase(
      `Done: ${selected} went to vfio-pci during boot; its identical twin ${twin} kept e1000e; the unit is ${status.status}: ${status.message}`,
    );
  } finally {
    await host.guest?.shutdown();
  }
}

main().catch((e) => {
  console.error(`\ndemo failed: ${(e as Error).message}`);
  process.exitCode = 1;
});
