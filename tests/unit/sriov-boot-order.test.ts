// The SR-IOV boot order (issue 21, item 7): a systemd unit ordered before nova-compute and
// neutron's SR-IOV agent whose waiter holds them back, bounded, until every planned PF has its VFs
// on their planned driver. The unit is checked by systemd's own verifier; the waiter runs under
// dash and busybox sh against a sysfs-shaped tree where the VFs appear late, never, or on the wrong
// driver, with a stand-in for the rule's helper beside it (the real helper is sriov-helper.test.ts'
// business, the real kernel tier 2's: tests/vm/tier2-boot-cycle.test.ts).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { OWNED } from "../../src/host/root";
import {
  renderSriovBootUnit,
  renderSriovBootWait,
  renderSriovBootWants,
  SRIOV_BOOT_UNIT,
} from "../../src/plan/render-sriov-boot";
import type { PlannedPf } from "../../src/plan/types";
import { amdHost } from "../support/hosts/presets";
import { useTempHosts } from "../support/hosts/use-temp-hosts";
import { planOnTree } from "../support/plan-on-tree";
import { useTempDirs, writeFileWithMode as write } from "../support/temp-files";
import { requireTool } from "../support/tools";

const temp = useTempDirs();

const PF = "0000:3b:00.0";
const BRIDGE = "sys/devices/pci0000:3a/0000:3a:00.0";

function planned(over: Partial<PlannedPf> = {}): PlannedPf {
  return {
    address: PF,
    vendorId: "8086",
    deviceId: "1592",
    classCode: "020000",
    vfDeviceId: "1889",
    announcedVfDeviceId: "1889",
    numVfs: 2,
    totalVfs: 64,
    currentVfs: 0,
    vfAddresses: ["0000:3b:01.0", "0000:3b:01.1"],
    vfDriver: "vfio-pci",
    physicalNetwork: null,
    alias: "fast-nic",
    numaPolicy: null,
    entry: 'devices entry #1 "x"',
    ...over,
  };
}

/** A PF on ice with `numVfs` now and no VF yet; `addVfs` lays out VFs as the kernel shows them. A
 * stand-in sriov-vfs beside the waiter records its arguments (and, with `helperFixes`, does what
 * the real one would: the VFs on vfio-pci). */
function fakeHost(opts: { numVfs: number; pfDriver?: string | null; helperFixes?: boolean }) {
  const root = temp("pci-sriov-boot-");
  const pfDir = join(root, BRIDGE, PF);
  write(join(pfDir, "sriov_totalvfs"), "64\n");
  write(join(pfDir, "sriov_numvfs"), `${opts.numVfs}\n`);
  mkdirSync(join(root, "sys/bus/pci/devices"), { recursive: true });
  symlinkSync(
    `../../../devices/pci0000:3a/0000:3a:00.0/${PF}`,
    join(root, "sys/bus/pci/devices", PF),
  );
  for (const d of ["ice", "iavf", "vfio-pci"])
    mkdirSync(join(root, "sys/bus/pci/drivers", d), { recursive: true });
  const bindPf = (driver: string) =>
    symlinkSync(`../../../../bus/pci/drivers/${driver}`, join(pfDir, "driver"));
  if (opts.pfDriver !== null) bindPf(opts.pfDriver ?? "ice");
  const addVfs = (n: number, driver: string | null) => {
    for (let i = 0; i < n; i++) {
      const vf = `0000:3b:01.${i}`;
      const dir = join(root, BRIDGE, vf);
      mkdirSync(dir, { recursive: true });
      rmSync(join(dir, "driver"), { force: true });
      if (driver) symlinkSync(`../../../../bus/pci/drivers/${driver}`, join(dir, "driver"));
      if (!existsSync(join(pfDir, `virtfn${i}`)))
        symlinkSync(`../${vf}`, join(pfDir, `virtfn${i}`));
    }
    write(join(pfDir, "sriov_numvfs"), `${n}\n`);
  };
  const bin = join(root, "lib");
  const waiter = write(join(bin, "sriov-boot"), renderSriovBootWait(), 0o755);
  // The rule's helper, as the waiter finds it: beside itself.
  const fix = opts.helperFixes
    ? `n=$2; i=0; while [ $i -lt $n ]; do d="${root}/${BRIDGE}/0000:3b:01.$i"; mkdir -p "$d"; rm -f "$d/driver"; ln -s ../../../../bus/pci/drivers/vfio-pci "$d/driver"; [ -e "${pfDir}/virtfn$i" ] || ln -s ../0000:3b:01.$i "${pfDir}/virtfn$i"; i=$((i+1)); done; echo $n > "${pfDir}/sriov_numvfs"\n`
    : "";
  write(join(bin, "sriov-vfs"), `#!/bin/sh\necho "sriov-vfs $*" >>'${root}/calls'\n${fix}`, 0o755);
  const fakebin = join(root, "fakebin");
  write(join(fakebin, "logger"), `#!/bin/sh\nshift 3; echo "$*" >>'${root}/log'\n`, 0o755);
  const env = { PCI_PASSTHROUGH_ROOT: root, PATH: `${fakebin}:/usr/bin:/bin` };
  const text = (f: string) =>
    existsSync(join(root, f)) ? readFileSync(join(root, f), "utf8") : "";
  return {
    root,
    addVfs,
    bindPf,
    run(args: string[], shell = "sh") {
      const [cmd, ...pre] = shell.split(" ");
      const r = spawnSync(cmd!, [...pre, waiter, ...args], { encoding: "utf8", env });
      return { status: r.status, log: text("log") + r.stderr, calls: text("calls") };
    },
    /** Starts the waiter and resolves with its exit code once it ends. */
    start(args: string[]): Promise<{ status: number | null; log: string; calls: string }> {
      const child = spawn("sh", [waiter, ...args], { env });
      let stderr = "";
      child.stderr.on("data", (d) => {
        stderr += d;
      });
      return new Promise((resolve) =>
        child.on("exit", (status) =>
          resolve({ status, log: text("log") + stderr, calls: text("calls") }),
        ),
      );
    },
  };
}

const ARGS = (limit: number, mode = "vfio-pci") => [String(limit), PF, "2", mode, "8086:1889"];

describe("the unit", () => {
  const unit = renderSriovBootUnit([
    planned(),
    planned({
      address: "0000:3b:00.1",
      numVfs: 4,
      vfDriver: "host",
      physicalNetwork: "physnet1",
      announcedVfDeviceId: null,
    }),
  ])!;

  it("runs before nova-compute and neutron's SR-IOV agent, after udev's coldplug and sriov-netplan-shim", () => {
    expect(unit).toMatch(/^Before=nova-compute\.service neutron-sriov-agent\.service$/m);
    expect(unit).toMatch(
      /^After=systemd-udev-trigger\.service systemd-modules-load\.service sriov-netplan-shim\.service$/m,
    );
    expect(unit).toMatch(/^Type=oneshot$/m);
    // Bounded: systemd gives up a little after the waiter's own deadline.
    expect(unit).toMatch(/^TimeoutStartSec=300$/m);
    expect(unit).toContain(
      `ExecStart=${OWNED.sriovBootWait} 240 ${PF} 2 vfio-pci 8086:1889 0000:3b:00.1 4 host -`,
    );
    expect(renderSriovBootWants()).toMatch(new RegExp(`^Wants=${SRIOV_BOOT_UNIT}$`, "m"));
  });

  it("none when no PF gets VFs", () => {
    expect(renderSriovBootUnit([])).toBeNull();
  });

  it("passes systemd's own verifier", () => {
    requireTool("systemd-analyze", "systemd");
    const dir = temp("pci-sriov-unit-");
    // The verifier checks that ExecStart's program exists: the unit, pointing at a real waiter.
    const waiter = write(join(dir, "sriov-boot"), renderSriovBootWait(), 0o755);
    const file = write(join(dir, SRIOV_BOOT_UNIT), unit.replace(OWNED.sriovBootWait, waiter));
    const r = spawnSync("systemd-analyze", ["verify", "--man=no", file], { encoding: "utf8" });
    const complaints = `${r.stdout}${r.stderr}`
      .split("\n")
      // The units it is ordered against are not installed on this machine: not the unit's fault.
      .filter(
        (l) => l.trim() !== "" && !/nova-compute|neutron-sriov-agent|sriov-netplan-shim/.test(l),
      );
    expect(complaints).toEqual([]);
  });

  it("comes with the plan for an entry with vfs, with the drop-in and the waiter", () => {
    const root = useTempHostsOnce();
    const plan = planOnTree(root, { devices: '- {address: "0000:41:00.1", vfs: 2}' });
    expect(plan.file(OWNED.sriovBootUnit)).toContain(
      "ExecStart=/usr/local/lib/pci-passthrough/sriov-boot 240 0000:41:00.1 2 vfio-pci 8086:154c",
    );
    expect(plan.file(OWNED.sriovBootWants)).toContain(`Wants=${SRIOV_BOOT_UNIT}`);
    expect(plan.plan.files.find((f) => f.path === OWNED.sriovBootWait)!.mode).toBe(0o755);
    // None of it goes into the initramfs: systemd reads it from the real root.
    expect(plan.plan.feeds[OWNED.sriovBootUnit]).toEqual([]);
  });
});

const hosts = useTempHosts();
function useTempHostsOnce(): string {
  return hosts(amdHost()).root;
}

describe("the waiter", () => {
  it("passes sh -n and shellcheck", () => {
    const h = fakeHost({ numVfs: 0 });
    const file = join(h.root, "lib", "sriov-boot");
    expect(spawnSync("sh", ["-n", file]).status).toBe(0);
    requireTool("shellcheck", "shellcheck");
    const r = spawnSync("shellcheck", ["-s", "sh", file], { encoding: "utf8" });
    expect(r.stdout).toBe("");
  });

  it.each(["sh", "busybox sh"])(
    "%s: VFs already there on vfio-pci: done at once, nothing rerun",
    (shell) => {
      const h = fakeHost({ numVfs: 0 });
      h.addVfs(2, "vfio-pci");
      const r = h.run(ARGS(5), shell);
      expect(r.status).toBe(0);
      expect(r.calls).toBe("");
      // busybox's own logger applet wins over the stand-in on PATH: its words go to syslog.
      if (shell === "sh") expect(r.log).toContain(`sriov-boot: ${PF}: 2 VFs ready on vfio-pci`);
    },
  );

  it("VFs recreated on the host driver (another owner's boot write): the helper moves them, then done", () => {
    const h = fakeHost({ numVfs: 0, helperFixes: true });
    h.addVfs(2, "iavf");
    const r = h.run(ARGS(5));
    expect(r.calls).toBe(`sriov-vfs ${PF} 2 vfio-pci 8086:1889\n`);
    expect(r.log).toContain("VF virtfn0 is on 'iavf', not vfio-pci after udev: making its VFs now");
    expect(r.status).toBe(0);
  });

  it("the VFs come late (a slow card, or a udev helper still at work): it waits for them", async () => {
    const h = fakeHost({ numVfs: 0 });
    const done = h.start(ARGS(30));
    setTimeout(() => h.addVfs(2, "vfio-pci"), 1500);
    const r = await done;
    expect(r.status).toBe(0);
    expect(r.log).toContain(`${PF}: 2 VFs ready on vfio-pci`);
  });

  it("the PF's driver binds late: it waits for it first", async () => {
    const h = fakeHost({ numVfs: 0, pfDriver: null, helperFixes: true });
    const done = h.start(ARGS(30));
    setTimeout(() => h.bindPf("ice"), 1500);
    const r = await done;
    expect(r.status).toBe(0);
    expect(r.calls).toBe(`sriov-vfs ${PF} 2 vfio-pci 8086:1889\n`);
  });

  it("never ready: gives up at its deadline, exit 1, naming the PF and what is missing", () => {
    const h = fakeHost({ numVfs: 0 });
    const r = h.run(ARGS(2));
    expect(r.status).toBe(1);
    expect(r.log).toContain(
      `sriov-boot: ${PF}: not ready after 2 s (sriov_numvfs is 0): nova-compute starts without them`,
    );
  });

  it("host mode: VFs on their host driver are ready; an unbound VF is not", () => {
    const ok = fakeHost({ numVfs: 0 });
    ok.addVfs(2, "iavf");
    expect(ok.run(ARGS(3, "host")).status).toBe(0);
    const unbound = fakeHost({ numVfs: 0 });
    unbound.addVfs(2, null);
    const r = unbound.run(ARGS(2, "host"));
    expect(r.status).toBe(1);
    expect(r.log).toContain("VF virtfn0 is on 'no driver', not its host driver");
  });

  it("a PF that is gone: exit 1 at once, naming it; the other PFs are still waited for", () => {
    const h = fakeHost({ numVfs: 0 });
    h.addVfs(2, "vfio-pci");
    const r = h.run(["5", "0000:99:00.0", "2", "vfio-pci", "-", ...ARGS(5).slice(1)]);
    expect(r.status).toBe(1);
    expect(r.log).toContain("sriov-boot: 0000:99:00.0: no such PCI device");
    expect(r.log).toContain(`sriov-boot: ${PF}: 2 VFs ready on vfio-pci`);
  });

  it.each([
    [["x"]],
    [["5", "0000:3b:00.0;", "2", "vfio-pci", "-"]],
    [["5", PF, "2x", "vfio-pci", "-"]],
    [["5", PF, "2", "nvme", "-"]],
  ])("refuses bad arguments %j with exit 2", (args) => {
    expect(fakeHost({ numVfs: 0 }).run(args).status).toBe(2);
  });
});
