/**
 * The emulated PCI topologies of the VM test bed, as data: which QEMU devices a guest gets, at which
 * guest address each one appears, and what the tests may expect of it. Addresses are fixed (`addr=`)
 * so a test can name "the second e1000e twin" as 0000:00:04.0 on every run.
 *
 * Slots 0x10 and 0x11 belong to the bed itself (9p share, command channel): never select them.
 */

/** One PCI function a topology adds to the guest. */
export interface PciDeviceSpec {
  /** Short name the tests use (`twinA`, `bootVga`, …). */
  key: string;
  /** The `-device` value; empty for a function QEMU adds implicitly (the bridge's secondary). */
  qemu: string;
  /** The function's address inside the guest. */
  address: string;
  /** `vendor:device`, lower-case hex, as sysfs reports it. */
  ids: string;
  /** The driver the guest binds at boot (the bed's init loads e1000e and e1000 only). */
  bootDriver?: string;
  /** Why the device is there: the case it emulates. */
  role: string;
}

/** A named set of devices a guest boots with. */
export interface Topology {
  name: string;
  devices: PciDeviceSpec[];
  /** QEMU objects the devices refer to, given before them (an NVMe subsystem). */
  backendArgs?: string[];
  /** Extra QEMU arguments the devices need (audio backends and the like). */
  extraArgs?: string[];
}

/** Two identical e1000e NICs (8086:10d3): selecting one by id would take both. */
export const TWINS: PciDeviceSpec[] = [
  {
    key: "twinA",
    qemu: "e1000e,addr=03.0,id=twinA",
    address: "0000:00:03.0",
    ids: "8086:10d3",
    bootDriver: "e1000e",
    role: "identical twin A (the one the tests select)",
  },
  {
    key: "twinB",
    qemu: "e1000e,addr=04.0,id=twinB",
    address: "0000:00:04.0",
    ids: "8086:10d3",
    bootDriver: "e1000e",
    role: "identical twin B (must stay on e1000e)",
  },
];

/**
 * The boot VGA (QEMU's std VGA; the kernel marks it boot_vga=1, it is the host's console) and two
 * secondary-vga twins that share its 1234:1111 ids.
 */
export const VGA: PciDeviceSpec[] = [
  {
    key: "bootVga",
    qemu: "VGA,addr=01.0,id=bootVga",
    address: "0000:00:01.0",
    ids: "1234:1111",
    role: "boot VGA (boot_vga=1): must be refused",
  },
  {
    key: "vgaA",
    qemu: "secondary-vga,addr=05.0,id=vgaA",
    address: "0000:00:05.0",
    ids: "1234:1111",
    role: "secondary VGA twin A",
  },
  {
    key: "vgaB",
    qemu: "secondary-vga,addr=06.0,id=vgaB",
    address: "0000:00:06.0",
    ids: "1234:1111",
    role: "secondary VGA twin B",
  },
];

/**
 * A PCIe-to-PCI bridge with two e1000 behind it: no ACS below a conventional PCI bridge, so the
 * bridge and both NICs form one IOMMU group — not viable unless every member moves.
 */
export const SHARED_GROUP: PciDeviceSpec[] = [
  {
    key: "bridge",
    qemu: "pcie-pci-bridge,addr=07.0,id=br1",
    address: "0000:00:07.0",
    ids: "1b36:000e",
    role: "PCIe-to-PCI bridge heading the shared group",
  },
  {
    key: "sharedA",
    qemu: "e1000,bus=br1,addr=01.0,id=sharedA",
    address: "0000:01:01.0",
    ids: "8086:100e",
    bootDriver: "e1000",
    role: "e1000 behind the bridge (shared group)",
  },
  {
    key: "sharedB",
    qemu: "e1000,bus=br1,addr=02.0,id=sharedB",
    address: "0000:01:02.0",
    ids: "8086:100e",
    bootDriver: "e1000",
    role: "e1000 behind the bridge (shared group)",
  },
];

/**
 * A NIC the guest uses: tests give it 192.0.2.10/24 and set it up. It has no backend (no
 * -netdev), so nothing leaves the guest and it never gets a carrier — operstate stays "down".
 */
export const IN_USE_NIC: PciDeviceSpec[] = [
  {
    key: "uplink",
    qemu: "e1000-82545em,addr=08.0,id=uplink",
    address: "0000:00:08.0",
    ids: "8086:100f",
    bootDriver: "e1000",
    role: "NIC in use by the host (address configured): must be refused",
  },
];

/**
 * A multi-function device shaped like a GPU with its HDMI audio: a display controller at .0 and an
 * HD-audio function (class 0x0403) at .1 of the same slot, which share one IOMMU group.
 */
export const MULTI_FUNCTION: PciDeviceSpec[] = [
  {
    key: "gpu",
    qemu: "virtio-gpu-pci,addr=09.0,multifunction=on,id=gpu",
    address: "0000:00:09.0",
    ids: "1af4:1050",
    bootDriver: "virtio-pci",
    role: "display function .0 of a multi-function slot",
  },
  {
    key: "gpuAudio",
    qemu: "ich9-intel-hda,addr=09.1,id=gpuAudio",
    address: "0000:00:09.1",
    ids: "8086:293e",
    role: "audio function .1 of the same slot (class 0x0403)",
  },
];

/**
 * The kernel's grouping rules, one case each, for the test of the charm's prediction of groups
 * (plan/iommu-groups.ts) against the real kernel's (issue 24 part 4). QEMU 7.2's pcie-root-port
 * has an ACS capability unless `disable-acs=on`; its e1000e has none.
 * - two root ports, functions of one device at 0b.0/0b.1, each with ACS: a group each;
 * - behind the first, a two-function e1000e without ACS: one group, without the port;
 * - behind the second, one e1000e: a group of its own;
 * - a root port without ACS (0c.0) and the e1000e behind it: one group;
 * - a two-function e1000e on the root bus (0d.0/0d.1): QEMU makes it a root-complex integrated
 *   endpoint, and the kernel's quirk for Intel's (pci_quirk_rciep_acs) isolates each function.
 * Bus numbers follow FULL's PCIe-to-PCI bridge at 07.0 (bus 01): the ports get 02, 03, 04.
 */
export const GROUPING: PciDeviceSpec[] = [
  {
    key: "acsPortA",
    qemu: "pcie-root-port,id=rpga,chassis=21,addr=0b.0,multifunction=on",
    address: "0000:00:0b.0",
    ids: "1b36:000c",
    bootDriver: "pcieport",
    role: "root port with ACS, function 0 of a two-function slot",
  },
  {
    key: "acsPortB",
    qemu: "pcie-root-port,id=rpgb,chassis=22,addr=0b.1",
    address: "0000:00:0b.1",
    ids: "1b36:000c",
    bootDriver: "pcieport",
    role: "root port with ACS, function 1 of the same slot",
  },
  {
    key: "cardA0",
    qemu: "e1000e,bus=rpga,addr=00.0,multifunction=on,id=cardA0",
    address: "0000:02:00.0",
    ids: "8086:10d3",
    bootDriver: "e1000e",
    role: "function 0 of a two-function card without ACS, below a port with ACS",
  },
  {
    key: "cardA1",
    qemu: "e1000e,bus=rpga,addr=00.1,id=cardA1",
    address: "0000:02:00.1",
    ids: "8086:10d3",
    bootDriver: "e1000e",
    role: "function 1 of that card",
  },
  {
    key: "cardB",
    qemu: "e1000e,bus=rpgb,addr=00.0,id=cardB",
    address: "0000:03:00.0",
    ids: "8086:10d3",
    bootDriver: "e1000e",
    role: "a single-function card below a port with ACS",
  },
  {
    key: "openPort",
    qemu: "pcie-root-port,id=rpgc,chassis=23,addr=0c.0,disable-acs=on",
    address: "0000:00:0c.0",
    ids: "1b36:000c",
    bootDriver: "pcieport",
    role: "root port without ACS",
  },
  {
    key: "cardC",
    qemu: "e1000e,bus=rpgc,addr=00.0,id=cardC",
    address: "0000:04:00.0",
    ids: "8086:10d3",
    bootDriver: "e1000e",
    role: "a card below the port without ACS (shares its group)",
  },
  {
    key: "rcA",
    qemu: "e1000e,addr=0d.0,multifunction=on,id=rcA",
    address: "0000:00:0d.0",
    ids: "8086:10d3",
    bootDriver: "e1000e",
    role: "function 0 of a two-function Intel RCiEP on the root bus (no ACS; the quirk isolates)",
  },
  {
    key: "rcB",
    qemu: "e1000e,addr=0d.1,id=rcB",
    address: "0000:00:0d.1",
    ids: "8086:10d3",
    bootDriver: "e1000e",
    role: "function 1 of that device",
  },
];

/** The groups the kernel makes of GROUPING's devices (by key), as its rules say. The root-bus pair
 * is left to tier1-intel's whole comparison (prediction = kernel, every function), as its grouping
 * rests on how QEMU types it and on the kernel's Intel RCiEP quirk. */
export const GROUPING_GROUPS: string[][] = [
  ["acsPortA"],
  ["acsPortB"],
  ["cardA0", "cardA1"],
  ["cardB"],
  ["openPort", "cardC"],
];

/** Every case in one guest: tier 1 boots this once per IOMMU flavour. */
export const FULL: Topology = {
  name: "full",
  devices: [...VGA, ...TWINS, ...SHARED_GROUP, ...IN_USE_NIC, ...MULTI_FUNCTION, ...GROUPING],
};

/**
 * A shared group the arm64 SMMUv3 can build: a two-function e1000e card (functions of one device
 * without ACS share a group) in a PCIe root port, which joins the group too (QEMU's root port has
 * no ACS). Each function keeps its own requester ID. (The
 * x86 bed's shared group, two NICs behind a PCIe-to-PCI bridge, does not work under SMMUv3: both
 * take the bridge's alias as their stream ID, and Linux 6.1's arm-smmu-v3 refuses the second —
 * "stream 256 already in tree" — so it ends up in no group at all.)
 */
export const SHARED_FUNCTIONS: PciDeviceSpec[] = [
  {
    key: "rootPort",
    qemu: "pcie-root-port,id=rp1,chassis=1,addr=07.0",
    address: "0000:00:07.0",
    ids: "1b36:000c",
    bootDriver: "pcieport",
    role: "PCIe root port above the two-function card",
  },
  {
    key: "sharedA",
    qemu: "e1000e,bus=rp1,addr=00.0,multifunction=on,id=sharedA",
    address: "0000:01:00.0",
    ids: "8086:10d3",
    bootDriver: "e1000e",
    role: "function 0 of a two-function card (shared group)",
  },
  {
    key: "sharedB",
    qemu: "e1000e,bus=rp1,addr=00.1,id=sharedB",
    address: "0000:01:00.1",
    ids: "8086:10d3",
    bootDriver: "e1000e",
    role: "function 1 of the same card (shared group)",
  },
];

/**
 * The arm64 tier's guest (virt machine, SMMUv3): the twins, a shared group and the NIC in use.
 * No VGA: virt has no legacy VGA, so there is no boot VGA to refuse.
 */
export const ARM64: Topology = {
  name: "arm64",
  devices: [...TWINS, ...SHARED_FUNCTIONS, ...IN_USE_NIC],
};

/** Just the e1000e twins: quick checks. */
export const TWINS_ONLY: Topology = { name: "twins", devices: [...TWINS] };

/**
 * An SR-IOV physical function: QEMU 7.2's NVMe controller (Debian 12 has no SR-IOV NIC model;
 * `igb` came in QEMU 8.0), which needs an NVMe subsystem (`SRIOV_NVME_BACKEND`) for SR-IOV. It
 * sits in its own PCIe root port, so its VFs — which appear at 01:00.1, 01:00.2… once
 * `sriov_numvfs` is written (offset 1, stride 1) — each get an IOMMU group of their own. Up to 3
 * VFs (`sriov_totalvfs`). No namespace: nothing here reads or writes the disk. The address holds
 * while no other bridge takes bus 01 first (FULL's PCI bridge at 00:07.0 would).
 */
export const SRIOV_NVME: PciDeviceSpec[] = [
  {
    key: "sriovPort",
    qemu: "pcie-root-port,id=rpsriov,chassis=10,addr=0a.0",
    address: "0000:00:0a.0",
    ids: "1b36:000c",
    bootDriver: "pcieport",
    role: "PCIe root port above the SR-IOV NVMe controller",
  },
  {
    key: "sriovPf",
    qemu:
      "nvme,serial=vmbedsriov,subsys=vmbedsubsys,sriov_max_vfs=3,sriov_vq_flexible=8," +
      "sriov_vi_flexible=4,msix_qsize=8,bus=rpsriov,addr=00.0,id=sriovPf",
    address: "0000:01:00.0",
    ids: "1b36:0010",
    bootDriver: "nvme",
    role: "SR-IOV physical function (NVMe, sriov_totalvfs 3): stays on nvme, its VFs go to VMs",
  },
];

/** The NVMe subsystem SRIOV_NVME's controller belongs to (QEMU refuses SR-IOV without one). */
export const SRIOV_NVME_BACKEND = ["-device", "nvme-subsys,id=vmbedsubsys"];

/** The address of VF `n` (1-based) of SRIOV_NVME's PF: offset 1, stride 1, as its sysfs says. */
export function sriovVfAddress(n: number): string {
  return `0000:01:00.${n}`;
}

/** The twins and the SR-IOV PF: the tier-2 boot cycle (both stories ride the same boots) and
 * tier 1's SR-IOV guest. */
export const TWINS_SRIOV: Topology = {
  name: "twins+sriov",
  devices: [...TWINS, ...SRIOV_NVME],
  backendArgs: SRIOV_NVME_BACKEND,
};

/** Looks a device of a topology up by its key; throws when the topology lacks it. */
export function device(topology: Topology, key: string): PciDeviceSpec {
  const found = topology.devices.find((d) => d.key === key);
  if (!found) {
    throw new Error(`topology ${topology.name} has no device "${key}"`);
  }
  return found;
}

/**
 * Two SR-IOV NICs with netdev VFs: QEMU 10's `igb` (Intel 82576, 8086:10c9; VFs 8086:10ca on
 * igbvf, sriov_totalvfs 7, VFs at offset 128 and stride 2: 0x:10.0, 0x:10.2…), each in a PCIe root
 * port of its own so each has its own bus and every VF its own IOMMU group. Needs QEMU 10
 * (scripts/vm/qemu10.sh) and a user-mode network backend each (IGB_BACKEND).
 */
export const IGB: Topology = {
  name: "igb",
  devices: [
    {
      key: "igbPortA",
      qemu: "pcie-root-port,id=rpigba,chassis=21,addr=0b.0",
      address: "0000:00:0b.0",
      ids: "1b36:000c",
      bootDriver: "pcieport",
      role: "PCIe root port above igb NIC A",
    },
    {
      key: "igbA",
      qemu: "igb,netdev=igbneta,bus=rpigba,addr=00.0,id=igbA",
      address: "0000:01:00.0",
      ids: "8086:10c9",
      bootDriver: "igb",
      role: "SR-IOV NIC A: carries the host's address; its VFs back neutron ports (physnet1)",
    },
    {
      key: "igbPortB",
      qemu: "pcie-root-port,id=rpigbb,chassis=22,addr=0c.0",
      address: "0000:00:0c.0",
      ids: "1b36:000c",
      bootDriver: "pcieport",
      role: "PCIe root port above igb NIC B",
    },
    {
      key: "igbB",
      qemu: "igb,netdev=igbnetb,bus=rpigbb,addr=00.0,id=igbB",
      address: "0000:02:00.0",
      ids: "8086:10c9",
      bootDriver: "igb",
      role: "SR-IOV NIC B: its VFs go to VMs through a flavor alias (vfio-pci)",
    },
  ],
  backendArgs: ["-netdev", "user,id=igbneta", "-netdev", "user,id=igbnetb"],
};

/** The address of VF `n` (0-based) of an igb PF on `bus`: offset 128, stride 2 (igb's own). */
export function igbVfAddress(bus: number, n: number): string {
  const routing = 128 + 2 * n;
  const dev = (routing >> 3).toString(16).padStart(2, "0");
  return `0000:${bus.toString(16).padStart(2, "0")}:${dev}.${routing & 7}`;
}
