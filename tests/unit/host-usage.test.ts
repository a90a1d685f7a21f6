// What the host uses, read from built trees: network interfaces (flags, master, addresses,
// routes), console GPU, storage through partitions, dm, md and NVMe multipath, SR-IOV PFs.
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import type { HostReadProblem } from "../../src/host/facts";
import {
  formatIpv6,
  parseIpAddrJson,
  readHostUsage,
  readNetInterfaces,
} from "../../src/host/usage";
import type { HostSpec, PciSpec } from "../support/hosts/build-host";
import {
  amdHost,
  gpuLessHost,
  qemuQ35Host,
  seedHost,
  sharedGroupHost,
} from "../support/hosts/presets";
import { useTempHosts } from "../support/hosts/use-temp-hosts";

const host = useTempHosts();

const usageOf = (spec: HostSpec) => Object.fromEntries(readHostUsage(host(spec).root));

/** A disk controller at `address` behind `parent`; `ids` is "vvvv:dddd". */
function diskController(
  address: string,
  parent: string,
  ids: string,
  classCode: string,
  driver: string,
  iommuGroup: number,
): PciSpec {
  const [vendor = "", device = ""] = ids.split(":");
  return { address, parent, vendor, device, class: classCode, driver, iommuGroup };
}

/** The GPU-less host with a SAS HBA (mpt3sas) behind its root port: a second disk controller. */
function gpuLessWithSas(): HostSpec {
  const spec = gpuLessHost();
  spec.pci!.push(
    diskController("0000:02:00.0", "0000:00:1c.0", "1000:0097", "010700", "mpt3sas", 3),
  );
  return spec;
}

describe("readHostUsage on the presets", () => {
  it.each<[string, () => HostSpec, Record<string, string[]>]>([
    [
      "seed: the management NIC, the console VGA and the root disk controller — not the GPUs",
      seedHost,
      {
        "0000:18:00.0": [
          "network interface eno1 is up",
          "network interface eno1 has addresses 10.0.0.5",
          "network interface eno1 carries 2 routes",
        ],
        "0000:03:00.0": [
          "boot VGA (boot_vga=1)",
          "console framebuffer fb0",
          "DRM card0 in use by the console",
        ],
        "0000:00:1f.2": [
          "disk controller for / (sda1 mounted)",
          "disk controller for /boot/efi (sda2 mounted)",
        ],
      },
    ],
    [
      "amd: SR-IOV PF with VFs, IPv6, LVM root on NVMe, swap; a GPU with a DRM card is not in use",
      amdHost,
      {
        "0000:41:00.0": [
          "network interface enp65s0f0 is up",
          "network interface enp65s0f0 has addresses 192.168.10.21, 2001:db8:10::21",
          "network interface enp65s0f0 carries 4 routes",
          "SR-IOV PF with 4 VFs enabled",
        ],
        "0000:43:00.0": [
          "disk controller for / (vg0-root mounted, on nvme0n1p3)",
          "disk controller for /boot/efi (nvme0n1p1 mounted)",
          "disk controller for swap on nvme0n1p2",
        ],
      },
    ],
    [
      "gpu-less: bonded NICs (each enslaved, up) and both halves of an md mirror on one controller",
      gpuLessHost,
      {
        "0000:01:00.0": [
          "network interface eno1 is up",
          "network interface eno1 is enslaved to bond0",
        ],
        "0000:01:00.1": [
          "network interface eno2 is up",
          "network interface eno2 is enslaved to bond0",
        ],
        "0000:00:1f.2": ["disk controller for / (md0 mounted, on sda1)"],
      },
    ],
    [
      "shared group: an up NIC without carrier (operstate down) is still in use",
      sharedGroupHost,
      {
        "0000:01:02.0": [
          "network interface eth1 is up",
          "network interface eth1 has addresses 10.10.0.2",
          "network interface eth1 carries 1 route",
        ],
        "0000:00:06.0": ["disk controller for / (vda mounted)"],
      },
    ],
  ])("%s", (_name, preset, expected) => {
    expect(usageOf(preset())).toEqual(expected);
  });

  it("qemu: only the boot VGA is the console; the secondary-vga twins' DRM cards are not", () => {
    const usage = usageOf(qemuQ35Host());
    expect(usage["0000:00:01.0"]).toEqual([
      "boot VGA (boot_vga=1)",
      "console framebuffer fb0",
      "DRM card0 in use by the console",
    ]);
    expect(usage["0000:00:05.0"]).toBeUndefined();
    expect(usage["0000:00:06.0"]).toBeUndefined();
    expect(usage["0000:00:03.0"]).toEqual(["network interface enp0s3 is up"]);
    expect(usage["0000:00:04.0"]).toBeUndefined();
  });
});

describe("console", () => {
  it("does not blame a PCI device for an EFI framebuffer (a platform device)", () => {
    const spec = seedHost();
    spec.framebuffers = [{ name: "fb0", platform: "efi-framebuffer.0" }];
    const usage = usageOf(spec);
    expect(usage["0000:03:00.0"]).toEqual(["boot VGA (boot_vga=1)"]);
  });

  /** The seed host as an old kernel shows it: fb0 on a firmware framebuffer, no boot_vga. */
  const oldKernelConsole = (platform: string) => {
    const spec = seedHost();
    for (const p of spec.pci ?? []) p.bootVga = null;
    spec.framebuffers = [{ name: "fb0", platform }];
    spec.drmCards = [];
    return spec;
  };
  const vgaOf = (spec: HostSpec) =>
    (spec.pci ?? []).filter((p) => p.class.startsWith("0300")).map((p) => p.address);

  it("without boot_vga anywhere, a firmware framebuffer's console is on the only VGA function", () => {
    const spec = oldKernelConsole("vesafb.0");
    const [only, ...others] = vgaOf(spec);
    spec.pci = spec.pci!.filter((p) => !others.includes(p.address));
    expect(usageOf(spec)[only!]).toEqual([
      "the console: fb0 is vesafb.0, a firmware framebuffer drawing on the only VGA function (this kernel has no boot_vga)",
    ]);
  });

  it("without boot_vga anywhere and several VGA functions, names each as possibly the console", () => {
    const spec = oldKernelConsole("efi-framebuffer.0");
    const vga = vgaOf(spec);
    expect(vga.length).toBeGreaterThan(1);
    const usage = usageOf(spec);
    for (const address of vga) {
      expect(usage[address]).toEqual([
        `possibly the console: fb0 is efi-framebuffer.0, a firmware framebuffer, and this kernel has no boot_vga to say which of the ${vga.length} VGA functions it draws on`,
      ]);
    }
  });

  it("trusts boot_vga where the kernel writes it, and guesses nothing for other platform devices", () => {
    // boot_vga present (0 on every function): the kernel says none is the firmware's console.
    const spec = oldKernelConsole("efi-framebuffer.0");
    for (const p of spec.pci ?? []) p.bootVga = false;
    expect(Object.keys(usageOf(spec)).filter((a) => vgaOf(spec).includes(a))).toEqual([]);
    // A SoC's own display controller is a platform device too, but no firmware framebuffer.
    const soc = oldKernelConsole("display-subsystem.0");
    expect(Object.keys(usageOf(soc)).filter((a) => vgaOf(soc).includes(a))).toEqual([]);
  });

  it("takes fb0 as the console even when it is not on the boot VGA, and only fb0", () => {
    const spec = seedHost();
    spec.framebuffers = [
      { name: "fb0", pci: "0000:83:00.0" },
      { name: "fb1", pci: "0000:84:00.0" },
    ];
    const usage = usageOf(spec);
    expect(usage["0000:83:00.0"]).toEqual([
      "console framebuffer fb0",
      "DRM card1 in use by the console",
    ]);
    expect(usage["0000:84:00.0"]).toBeUndefined();
    expect(usage["0000:03:00.0"]).toEqual(["boot VGA (boot_vga=1)"]);
  });
});

describe("storage", () => {
  it("finds the controller of / when /proc/mounts says /dev/root (no initramfs), via mountinfo", () => {
    const spec = seedHost();
    spec.mounts = [{ device: "/dev/root", mountpoint: "/", block: "sda1" }];
    expect(usageOf(spec)["0000:00:1f.2"]).toEqual(["disk controller for / (sda1 mounted)"]);
  });

  it("follows native NVMe multipath to every controller of the subsystem", () => {
    const spec = amdHost();
    spec.pci!.push(
      diskController("0000:44:00.0", "0000:40:03.1", "144d:a824", "010802", "nvme", 35),
    );
    spec.block!.push({
      name: "nvme1n1",
      nvmeSubsystem: {
        index: 1,
        controllers: [
          { name: "nvme1", pci: "0000:43:00.0" },
          { name: "nvme2", pci: "0000:44:00.0" },
        ],
      },
      partitions: ["nvme1n1p1"],
    });
    spec.mounts!.push({ device: "/dev/nvme1n1p1", mountpoint: "/srv/data store" });
    const usage = usageOf(spec);
    expect(usage["0000:44:00.0"]).toEqual([
      "disk controller for /srv/data store (nvme1n1p1 mounted)",
    ]);
    expect(usage["0000:43:00.0"]).toContain(
      "disk controller for /srv/data store (nvme1n1p1 mounted)",
    );
  });

  it("goes through stacked dm devices (LVM on LUKS) and md to the disks' controllers", () => {
    const spec = gpuLessWithSas();
    spec.block = [
      { name: "sda", pci: "0000:00:1f.2", partitions: ["sda1"] },
      { name: "sdb", pci: "0000:02:00.0", bus: "scsi", partitions: ["sdb1"] },
      { name: "md0", slaves: ["sda1", "sdb1"] },
      { name: "dm-0", slaves: ["md0"], dmName: "luks-root" },
      { name: "dm-1", slaves: ["dm-0"], dmName: "vg0-root" },
    ];
    spec.mounts = [{ device: "/dev/mapper/vg0-root", mountpoint: "/" }];
    const usage = usageOf(spec);
    expect(usage["0000:00:1f.2"]).toEqual(["disk controller for / (vg0-root mounted, on sda1)"]);
    expect(usage["0000:02:00.0"]).toEqual(["disk controller for / (vg0-root mounted, on sdb1)"]);
  });

  it("a disk something is built on (md member, LVM PV) is in use with nothing mounted", () => {
    const spec = gpuLessWithSas();
    spec.block = [
      { name: "sda", pci: "0000:00:1f.2", partitions: ["sda1"] },
      { name: "sdb", pci: "0000:02:00.0", bus: "scsi", partitions: ["sdb1"] },
      // An LVM volume group of instance disks on sdb1: nothing of it is mounted.
      { name: "dm-0", slaves: ["sdb1"], dmName: "nova-instance1" },
    ];
    // No /proc/mounts line for either disk (or a recording with no /proc at all).
    spec.mounts = [];
    const usage = usageOf(spec);
    expect(usage["0000:02:00.0"]).toEqual([
      "disk controller for sdb1, held by nova-instance1 (RAID, LVM, dm-crypt or bcache built on it)",
    ]);
    expect(usage["0000:00:1f.2"]).toBeUndefined();
  });

  it("finds a dm device by its dm/name when /dev/mapper has no link", () => {
    const spec = amdHost();
    const built = host(spec);
    fs.rmSync(path.join(built.root, "dev/mapper/vg0-root"));
    expect(Object.fromEntries(readHostUsage(built.root))["0000:43:00.0"]).toContain(
      "disk controller for / (vg0-root mounted, on nvme0n1p3)",
    );
  });

  it("ignores pseudo filesystems, loop devices and swap files; reports a device it cannot place", () => {
    const built = host(seedHost());
    const mounts = path.join(built.root, "proc/mounts");
    fs.appendFileSync(
      mounts,
      "overlay /var/lib/docker/overlay2/x/merged overlay rw 0 0\n/dev/loop0 /snap/core/1 squashfs ro 0 0\n/dev/sdz9 /mnt ext4 rw 0 0\n",
    );
    fs.appendFileSync(path.join(built.root, "proc/swaps"), "/swap.img  file  2097148  0  -2\n");
    // A snap's loop device: a real block device, but virtual (no PCI on its path).
    fs.mkdirSync(path.join(built.root, "sys/devices/virtual/block/loop0"), { recursive: true });
    fs.symlinkSync(
      "../../devices/virtual/block/loop0",
      path.join(built.root, "sys/class/block/loop0"),
    );
    const problems: HostReadProblem[] = [];
    const usage = Object.fromEntries(readHostUsage(built.root, { problems }));
    expect(usage["0000:00:1f.2"]).toEqual([
      "disk controller for / (sda1 mounted)",
      "disk controller for /boot/efi (sda2 mounted)",
    ]);
    expect(problems.map((p) => p.message)).toEqual([
      expect.stringContaining(
        "cannot find the block device /dev/sdz9 (mounted on /mnt) under /sys/class/block",
      ),
    ]);
  });
});

describe("readNetInterfaces", () => {
  it("reads admin state from flags, not operstate", () => {
    const nets = readNetInterfaces(host(sharedGroupHost()).root);
    const eth1 = nets.find((n) => n.name === "eth1")!;
    expect([eth1.adminUp, eth1.operstate, eth1.pciAddress]).toEqual([true, "down", "0000:01:02.0"]);
    expect(nets.find((n) => n.name === "eth0")!.adminUp).toBe(false);
  });

  it("places IPv4 addresses by their connected route, leaves out loopback and link-local IPv6", () => {
    const nets = readNetInterfaces(host(amdHost()).root);
    const pf = nets.find((n) => n.name === "enp65s0f0")!;
    expect(pf).toEqual({
      name: "enp65s0f0",
      pciAddress: "0000:41:00.0",
      adminUp: true,
      operstate: "up",
      master: null,
      uppers: [],
      addresses: ["192.168.10.21", "2001:db8:10::21"],
      // IPv4 default + connected, IPv6 prefix + default; not fe80::/64, ff00::/8 or local routes.
      routes: 4,
    });
    const lo = nets.find((n) => n.name === "lo")!;
    expect([lo.pciAddress, lo.addresses, lo.routes]).toEqual([null, [], 0]);
  });

  it("gives an address to the most specific connected route", () => {
    const nets = readNetInterfaces(
      host({
        net: [
          { name: "eno1", up: true, ipv4: ["10.0.0.5/16"] },
          { name: "eno2", up: true, ipv4: ["10.0.1.7/24"] },
          { name: "eno3", up: true, ipv4: ["192.0.2.9/32"] },
        ],
      }).root,
    );
    const addresses = Object.fromEntries(nets.map((n) => [n.name, n.addresses]));
    expect(addresses["eno1"]).toEqual(["10.0.0.5"]);
    expect(addresses["eno2"]).toEqual(["10.0.1.7"]);
    // A /32 has no connected route: it cannot be placed from procfs (documented in usage.ts).
    expect(addresses["eno3"]).toEqual([]);
  });

  describe("two interfaces on one /24 (the demo's management NIC and the twin)", () => {
    const sameSubnet = () =>
      host({
        net: [
          { name: "ens3", up: true, ipv4: ["192.0.2.10/24"] },
          { name: "ens4", up: false, ipv4: ["192.0.2.4/24"] },
        ],
      }).root;
    // What `ip -j -4 addr show` prints for them (iproute2 6.1; fields trimmed to the ones read).
    const ipJson = JSON.stringify([
      {
        ifindex: 1,
        ifname: "lo",
        addr_info: [{ family: "inet", local: "127.0.0.1", prefixlen: 8 }],
      },
      {
        ifindex: 2,
        ifname: "ens3",
        addr_info: [{ family: "inet", local: "192.0.2.10", prefixlen: 24 }],
      },
      {
        ifindex: 3,
        ifname: "ens4",
        addr_info: [{ family: "inet", local: "192.0.2.4", prefixlen: 24 }],
      },
    ]);
    const addressesOf = (nets: Array<{ name: string; addresses: string[] }>) =>
      Object.fromEntries(nets.map((n) => [n.name, n.addresses]));

    it("asked per interface (a real host's `ip -j addr`), each address stays with its interface", () => {
      const addresses = addressesOf(readNetInterfaces(sameSubnet(), [], () => ipJson));
      expect(addresses["ens3"]).toEqual(["192.0.2.10"]);
      expect(addresses["ens4"]).toEqual(["192.0.2.4"]);
    });

    it("from procfs alone (a test root), the first connected route takes both: the known limit", () => {
      const addresses = addressesOf(readNetInterfaces(sameSubnet()));
      const all = [...(addresses["ens3"] ?? []), ...(addresses["ens4"] ?? [])].sort();
      expect(all).toEqual(["192.0.2.10", "192.0.2.4"]);
      expect([addresses["ens3"], addresses["ens4"]]).not.toEqual([["192.0.2.10"], ["192.0.2.4"]]);
    });

    it("falls back to procfs when `ip` cannot answer (missing, or a busybox `ip` without -j)", () => {
      const fallback = addressesOf(readNetInterfaces(sameSubnet(), [], () => null));
      expect(fallback).toEqual(addressesOf(readNetInterfaces(sameSubnet())));
      const garbled = addressesOf(readNetInterfaces(sameSubnet(), [], () => "ip: invalid option"));
      expect(garbled).toEqual(fallback);
    });
  });

  it("names the master and the upper devices (VLANs) of an interface", () => {
    const built = host(seedHost());
    const eno2 = fs.realpathSync(path.join(built.root, "sys/class/net/eno2"));
    const vlan = path.join(built.root, "sys/devices/virtual/net/eno2.100");
    fs.mkdirSync(vlan, { recursive: true });
    fs.symlinkSync(path.relative(eno2, vlan), path.join(eno2, "upper_eno2.100"));
    const usage = Object.fromEntries(readHostUsage(built.root));
    expect(usage["0000:18:00.1"]).toEqual([
      "network interface eno2 is the lower device of eno2.100",
    ]);
    const nets = readNetInterfaces(host(gpuLessHost()).root);
    expect(nets.find((n) => n.name === "eno1")!.master).toBe("bond0");
  });

  it("skips /sys/class/net/bonding_masters, which is a file", () => {
    const built = host(gpuLessHost());
    fs.writeFileSync(path.join(built.root, "sys/class/net/bonding_masters"), "bond0\n");
    const problems: HostReadProblem[] = [];
    const names = readNetInterfaces(built.root, problems).map((n) => n.name);
    expect(names).not.toContain("bonding_masters");
    expect(names).toContain("bond0");
  });

  it("reads `ip -j addr`'s JSON: inet only, loopback left out, anything else is not its JSON", () => {
    const text = JSON.stringify([
      {
        ifname: "eth0",
        addr_info: [
          { family: "inet", local: "10.1.2.3" },
          { family: "inet6", local: "fe80::1" },
        ],
      },
      { ifname: "lo", addr_info: [{ family: "inet", local: "127.0.0.1" }] },
    ]);
    expect(Object.fromEntries(parseIpAddrJson(text)!)).toEqual({ eth0: ["10.1.2.3"] });
    expect(parseIpAddrJson("not json")).toBeNull();
    expect(parseIpAddrJson("{}")).toBeNull();
  });

  it("formats IPv6 addresses the RFC 5952 way", () => {
    expect(formatIpv6("20010db8000000000000000000000005")).toBe("2001:db8::5");
    expect(formatIpv6("fd000000000000000000000000000002")).toBe("fd00::2");
    expect(formatIpv6("20010db8000100000001000000000001")).toBe("2001:db8:1:0:1::1");
    expect(formatIpv6("00000000000000000000000000000000")).toBe("::");
    expect(formatIpv6("20010db8000000010001000100010001")).toBe("2001:db8:0:1:1:1:1:1");
  });
});
