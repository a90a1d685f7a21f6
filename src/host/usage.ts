// What the host itself is using, by PCI address, in operator words: the rebind action refuses to
// take these (unless forced) and verify-iommu flags groups that contain them.
//
// Sources, files wherever they suffice (so a copied host tree answers too):
// - network: /sys/class/net/<if> (flags, operstate, master/upper links, device link);
//   IPv6 addresses from /proc/net/if_inet6; routes from /proc/net/route and /proc/net/ipv6_route.
// - IPv4 addresses: procfs has no per-interface IPv4 list. On a real host (root `/`) the kernel
//   says which interface holds each address: `ip -j -4 addr show` (iproute2; netlink). Not
//   os.networkInterfaces(): libuv leaves out every interface that is not up and running, and a
//   NIC without carrier holding an address is exactly one the host means to use.
//   Under a test root, or where `ip` is missing or fails (a busybox userland), the files: the
//   LOCAL leaves of /proc/net/fib_trie (every address the host owns), each given to the
//   interface whose connected route (no gateway) in /proc/net/route covers it, longest prefix
//   first. That guess is wrong when two interfaces share a subnet (both addresses go to the
//   first route's interface), and an address without a connected route (a /32 with
//   `noprefixroute`, a point-to-point peer) cannot be placed; such an interface is still caught
//   by "is up" when it is up.
// - storage: /proc/mounts and /proc/swaps, and every block device with `holders/` (md members,
//   LVM PVs, dm-crypt and bcache backing devices), through /sys/class/block/<name> into the device
//   tree; dm and md devices through their `slaves/`, native NVMe multipath through the subsystem's
//   controllers. The leaf PCI controller is reported; bridges above it are not (they are never
//   passthrough targets, and listing them would make every device behind them look "in use").
// - console: `boot_vga`, the console framebuffer fb0 (fbcon maps every console to fb0 unless
//   booted with fbcon=map:, which is not read), and the DRM card behind fb0 — only that one: every
//   GPU with a DRM driver has a card, which says nothing about the host using it. A firmware
//   framebuffer (vesafb, efifb, simplefb) hangs off a platform device: see firmwareConsoleGuess.
import { existsSync, readlinkSync, realpathSync } from "node:fs";
import { pciAddressesInPath } from "../pci-vocabulary";
import type { HostReadProblem, HostUsage, NetInterface, PciFunction } from "./facts";
import { readPciFunctions } from "./pci";
import { listDir, readSmallFile } from "./read-files";
import { isRealRoot, READ, under } from "./root";

const IFF_UP = 0x1;

/** Runs `ip -j -4 addr show` and returns its stdout, or null when it could not (no `ip`, no JSON
 * support in a busybox `ip`, a non-zero exit). A parameter of readNetInterfaces for tests. */
export type IpAddrJson = () => string | null;

const runIpAddrJson: IpAddrJson = () => {
  // child_process (and the net and stream modules it loads) costs every hook milliseconds; only
  // this fallback needs it.
  const { spawnSync } = require("node:child_process") as typeof import("node:child_process");
  const r = spawnSync("ip", ["-j", "-4", "addr", "show"], { encoding: "utf8", timeout: 10_000 });
  return r.status === 0 && r.stdout ? r.stdout : null;
};

/** Interface → IPv4 addresses from `ip -j -4 addr show`; null when the text is not its JSON. */
export function parseIpAddrJson(text: string): Map<string, string[]> | null {
  let links: unknown;
  try {
    links = JSON.parse(text);
  } catch {
    return null;
  }
  if (!Array.isArray(links)) return null;
  const byInterface = new Map<string, string[]>();
  for (const link of links as Array<{ ifname?: unknown; addr_info?: unknown }>) {
    if (typeof link?.ifname !== "string" || !Array.isArray(link.addr_info)) continue;
    for (const info of link.addr_info as Array<{ family?: unknown; local?: unknown }>) {
      if (info?.family !== "inet" || typeof info.local !== "string") continue;
      if (info.local.startsWith("127.")) continue;
      const list = byInterface.get(link.ifname) ?? [];
      if (!list.includes(info.local)) list.push(info.local);
      byInterface.set(link.ifname, list);
    }
  }
  return byInterface;
}

/** Reads every network interface with its flags, master, PCI device, addresses and route count.
 * `ipAddrJson` asks the kernel for each interface's IPv4 addresses; it is used on a real host only
 * (root `/`), or whenever a test passes one. */
export function readNetInterfaces(
  root: string,
  problems: HostReadProblem[] = [],
  ipAddrJson: IpAddrJson | null = isRealRoot(root) ? runIpAddrJson : null,
): NetInterface[] {
  resolvedRoot = null;
  const names = (listDir(root, READ.net, problems) ?? []).sort();
  const ipv4 = readIpv4Routes(root, problems);
  const routes = countRoutes(root, ipv4, problems);
  const addresses = new Map<string, string[]>();
  const add = (name: string, address: string): void => {
    const list = addresses.get(name);
    if (!list) addresses.set(name, [address]);
    else if (!list.includes(address)) list.push(address);
  };
  const text = ipAddrJson?.() ?? null;
  const fromKernel = text === null ? null : parseIpAddrJson(text);
  if (fromKernel) {
    for (const [name, list] of fromKernel) for (const address of list) add(name, address);
  } else {
    for (const address of readLocalIpv4(root, problems)) {
      const name = interfaceForIpv4(address, ipv4);
      if (name) add(name, address);
    }
  }
  for (const [name, address] of readIpv6Addresses(root, problems)) add(name, address);

  const interfaces: NetInterface[] = [];
  for (const name of names) {
    const hostDir = `${READ.net}/${name}`;
    // /sys/class/net also holds the file `bonding_masters` when the bonding module is loaded.
    const flagsText = readSmallFile(
      root,
      `${hostDir}/flags`,
      problems,
      `interface ${name} skipped`,
    );
    if (flagsText === null) continue;
    const flags = Number.parseInt(flagsText, 16);
    interfaces.push({
      name,
      pciAddress: deviceAddress(root, `${hostDir}/device`),
      adminUp: Number.isInteger(flags) && (flags & IFF_UP) !== 0,
      operstate:
        readSmallFile(root, `${hostDir}/operstate`, problems, "operstate unknown") ?? "unknown",
      master: linkName(root, `${hostDir}/master`),
      addresses: addresses.get(name) ?? [],
      routes: routes.get(name) ?? 0,
    });
  }
  return interfaces;
}

/** Which PCI functions the host uses for itself, each with its reasons in operator words. */
export function readHostUsage(
  root: string,
  options: {
    functions?: PciFunction[];
    netInterfaces?: NetInterface[];
    problems?: HostReadProblem[];
  } = {},
): HostUsage {
  resolvedRoot = null;
  const problems = options.problems ?? [];
  const functions = options.functions ?? readPciFunctions(root).functions;
  const usage: HostUsage = new Map();
  const use = (address: string, reason: string): void => {
    const reasons = usage.get(address);
    if (!reasons) usage.set(address, [reason]);
    else if (!reasons.includes(reason)) reasons.push(reason);
  };

  for (const net of options.netInterfaces ?? readNetInterfaces(root, problems)) {
    if (net.pciAddress === null) continue;
    const what = `network interface ${net.name}`;
    if (net.adminUp) use(net.pciAddress, `${what} is up`);
    if (net.addresses.length > 0)
      use(net.pciAddress, `${what} has addresses ${net.addresses.join(", ")}`);
    if (net.routes > 0) {
      use(net.pciAddress, `${what} carries ${net.routes} route${net.routes === 1 ? "" : "s"}`);
    }
    if (net.master) use(net.pciAddress, `${what} is enslaved to ${net.master}`);
    for (const upper of upperDevices(root, net.name)) {
      if (upper !== net.master) use(net.pciAddress, `${what} is the lower device of ${upper}`);
    }
  }

  for (const fn of functions) {
    if (fn.bootVga) use(fn.address, "boot VGA (boot_vga=1)");
    if (fn.sriov && fn.sriov.numVfs > 0) {
      use(
        fn.address,
        `SR-IOV PF with ${fn.sriov.numVfs} VF${fn.sriov.numVfs === 1 ? "" : "s"} enabled`,
      );
    }
  }

  const consoleGpu = deviceAddress(root, `${READ.graphics}/fb0/device`);
  if (consoleGpu) {
    use(consoleGpu, "console framebuffer fb0");
    for (const card of listDir(root, READ.drm, problems) ?? []) {
      if (
        /^card\d+$/.test(card) &&
        deviceAddress(root, `${READ.drm}/${card}/device`) === consoleGpu
      ) {
        use(consoleGpu, `DRM ${card} in use by the console`);
      }
    }
  } else {
    for (const [address, reason] of firmwareConsoleGuess(root, functions)) use(address, reason);
  }

  for (const item of readStorageInUse(root, problems)) {
    for (const { address, via } of storageControllers(root, item.device)) {
      const on = via === item.device.name ? "" : `, on ${via}`;
      use(
        address,
        item.kind === "swap"
          ? `disk controller for swap on ${item.device.label}${on}`
          : `disk controller for ${item.mountpoint} (${item.device.label} mounted${on})`,
      );
    }
  }
  // A disk something is built on is in use even with nothing mounted (or no /proc/mounts read);
  // one reason per controller is enough, so a controller a mount already names is left as it is.
  const diskReason = (address: string) =>
    (usage.get(address) ?? []).some((r) => r.startsWith("disk controller"));
  for (const held of readHeldBlockDevices(root, problems)) {
    for (const { address, via } of storageControllers(root, held.device)) {
      if (diskReason(address)) continue;
      const on = via === held.device.name ? "" : `, on ${via}`;
      use(
        address,
        `disk controller for ${held.device.label}${on}, held by ${held.holders.join(", ")} (RAID, LVM, dm-crypt or bcache built on it)`,
      );
    }
  }
  return usage;
}

// ---------------------------------------------------------------------------------------------
// Console

/** Platform devices of the framebuffers the firmware sets up on the boot GPU's memory (VESA BIOS,
 * EFI GOP, the bootloader's simple framebuffer, legacy VGA): `vesafb.0`, `efi-framebuffer.0`… */
const FIRMWARE_FRAMEBUFFER = /^(vesafb|efifb|efi-framebuffer|simple-framebuffer|vga16fb)\.\d+$/;

/**
 * The VGA functions that may carry the console when fb0 is a firmware framebuffer, which sysfs
 * files under a platform device, not under the GPU it draws on. A kernel that has `boot_vga` says
 * which GPU the firmware used (the boot_vga reason above); an old one has none on any function, and
 * then we must guess without taking the console. One VGA function: the framebuffer is on it. Several:
 * we refuse to guess which one, so each is named as possibly the console (the host keeps them all;
 * `force: true` on an entry takes one anyway). Only VGA-class functions: the firmware draws through
 * VGA (or its EFI successor on the same GPU); a 3D controller (0302) has no display of its own.
 */
function firmwareConsoleGuess(root: string, functions: PciFunction[]): Array<[string, string]> {
  const fb0 = realHostPath(root, `${READ.graphics}/fb0/device`);
  if (fb0 === null || pciAddressesInPath(fb0).length > 0) return [];
  const platform = fb0.slice(fb0.lastIndexOf("/") + 1);
  if (!fb0.includes("/devices/platform/") || !FIRMWARE_FRAMEBUFFER.test(platform)) return [];
  const vga = functions.filter((f) => /^(0300|0001)/.test(f.classCode));
  const hasBootVga = vga.some((f) =>
    existsSync(under(root, `${READ.pciDevices}/${f.address}/boot_vga`)),
  );
  if (hasBootVga || vga.length === 0) return [];
  const fb = `fb0 is ${platform}, a firmware framebuffer`;
  if (vga.length === 1) {
    return [
      [
        vga[0]!.address,
        `the console: ${fb} drawing on the only VGA function (this kernel has no boot_vga)`,
      ],
    ];
  }
  return vga.map((f) => [
    f.address,
    `possibly the console: ${fb}, and this kernel has no boot_vga to say which of the ${vga.length} VGA functions it draws on`,
  ]);
}

// ---------------------------------------------------------------------------------------------
// Network details

/** The last PCI address on the resolved path of a `device` link (virtio and USB NICs sit below
 * their PCI function), or null. */
function deviceAddress(root: string, hostLink: string): string | null {
  const resolved = realHostPath(root, hostLink);
  if (resolved === null) return null;
  return pciAddressesInPath(resolved).at(-1) ?? null;
}

/** The root as resolved for this read (readHostUsage and readNetInterfaces forget it on entry):
 * resolved once, not again for each of the dozens of links a read follows. */
let resolvedRoot: { root: string; real: string } | null = null;

/** Resolves a host path under the root to a host path (root prefix removed); null if absent.
 * realpath(3) itself (`.native`): the JS realpathSync lstat()s every component of every path
 * from JavaScript, and sysfs paths are a dozen components deep. */
function realHostPath(root: string, hostPath: string): string | null {
  try {
    const real = realpathSync.native(under(root, hostPath));
    if (resolvedRoot?.root !== root) resolvedRoot = { root, real: realpathSync.native(root) };
    const realRoot = resolvedRoot.real;
    if (realRoot === "/") return real;
    return real.startsWith(`${realRoot}/`) ? real.slice(realRoot.length) : null;
  } catch {
    return null;
  }
}

function linkName(root: string, hostLink: string): string | null {
  try {
    const target = readlinkSync(under(root, hostLink));
    return target.slice(target.lastIndexOf("/") + 1);
  } catch {
    return null;
  }
}

/** `upper_<dev>` links: VLANs, macvlans, bonds and bridges stacked on this interface. */
function upperDevices(root: string, name: string): string[] {
  const entries = listDir(root, `${READ.net}/${name}`, []) ?? [];
  return entries
    .filter((e) => e.startsWith("upper_"))
    .map((e) => e.slice("upper_".length))
    .sort();
}

/** Routes per interface: IPv4 routes that are up, and IPv6 routes the operator or a daemon added
 * (not the fe80::/64, multicast and local routes the kernel gives every interface that is up). */
function countRoutes(
  root: string,
  ipv4: Ipv4Route[],
  problems: HostReadProblem[],
): Map<string, number> {
  const counts = new Map<string, number>();
  const bump = (name: string): void => {
    counts.set(name, (counts.get(name) ?? 0) + 1);
  };
  for (const route of ipv4) {
    if (route.flags & 0x1) bump(route.iface);
  }
  const v6 = readSmallFile(root, READ.ipv6Routes, problems, "IPv6 routes not counted") ?? "";
  const RTF_UP = 0x1;
  const RTF_ANYCAST = 0x100000;
  const RTF_LOCAL = 0x80000000;
  const RTF_CACHE = 0x1000000;
  for (const line of v6.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const dest = f[0]!;
    const destLength = Number.parseInt(f[1]!, 16);
    const flags = Number.parseInt(f[8]!, 16);
    const iface = f[9]!;
    if (!(flags & RTF_UP) || flags & (RTF_LOCAL | RTF_ANYCAST | RTF_CACHE)) continue;
    if (dest.startsWith("ff")) continue;
    if (dest.startsWith("fe80") && destLength === 64) continue;
    bump(iface);
  }
  return counts;
}

interface Ipv4Route {
  iface: string;
  /** Network order as an unsigned 32-bit number. */
  destination: number;
  mask: number;
  gateway: number;
  flags: number;
}

/** /proc/net/route: hex fields in host (little-endian) byte order. */
function readIpv4Routes(root: string, problems: HostReadProblem[]): Ipv4Route[] {
  const text = readSmallFile(root, READ.ipv4Routes, problems, "IPv4 routes not counted") ?? "";
  const routes: Ipv4Route[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    routes.push({
      iface: f[0]!,
      destination: swap32(Number.parseInt(f[1]!, 16)),
      gateway: swap32(Number.parseInt(f[2]!, 16)),
      flags: Number.parseInt(f[3]!, 16),
      mask: swap32(Number.parseInt(f[7]!, 16)),
    });
  }
  return routes;
}

function swap32(n: number): number {
  return (((n & 0xff) << 24) | ((n & 0xff00) << 8) | ((n >>> 8) & 0xff00) | (n >>> 24)) >>> 0;
}

function parseIpv4(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let n = 0;
  for (const part of parts) {
    const byte = Number(part);
    if (!/^\d{1,3}$/.test(part) || byte > 255) return null;
    n = n * 256 + byte;
  }
  return n;
}

/** Every IPv4 address the host owns (LOCAL leaves of /proc/net/fib_trie), loopback excluded. */
function readLocalIpv4(root: string, problems: HostReadProblem[]): string[] {
  const text = readSmallFile(root, READ.fibTrie, problems, "IPv4 addresses not shown") ?? "";
  const found: string[] = [];
  let leaf: string | null = null;
  for (const line of text.split("\n")) {
    const leafMatch = /\|--\s+(\d+\.\d+\.\d+\.\d+)/.exec(line);
    if (leafMatch) {
      leaf = leafMatch[1]!;
      continue;
    }
    if (leaf && /^\s+\/\d+\s+\S+\s+LOCAL\b/.test(line) && !leaf.startsWith("127.")) {
      if (!found.includes(leaf)) found.push(leaf);
    } else if (!/^\s+\//.test(line)) {
      leaf = null;
    }
  }
  return found;
}

/** The interface whose connected route covers the address, longest prefix first. */
function interfaceForIpv4(address: string, routes: Ipv4Route[]): string | null {
  const ip = parseIpv4(address);
  if (ip === null) return null;
  let best: Ipv4Route | null = null;
  for (const route of routes) {
    if (route.gateway !== 0 || route.mask === 0 || (route.flags & 0x2) !== 0) continue;
    if ((ip & route.mask) >>> 0 !== route.destination) continue;
    if (best === null || route.mask > best.mask) best = route;
  }
  return best?.iface ?? null;
}

/** `(interface, address)` pairs from /proc/net/if_inet6, without link-local and loopback: every
 * interface that is up has an fe80:: address, which says nothing about the host using it. */
function readIpv6Addresses(root: string, problems: HostReadProblem[]): Array<[string, string]> {
  const text = readSmallFile(root, READ.ifInet6, problems, "IPv6 addresses not shown") ?? "";
  const pairs: Array<[string, string]> = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || !/^[0-9a-f]{32}$/i.test(f[0]!)) continue;
    const scope = Number.parseInt(f[3]!, 16);
    if (scope === 0x20 || scope === 0x10) continue;
    pairs.push([f[5]!, formatIpv6(f[0]!)]);
  }
  return pairs;
}

/** 32 hex digits → RFC 5952 text (`2001:db8::5`). */
export function formatIpv6(hex: string): string {
  const groups: string[] = [];
  for (let i = 0; i < 32; i += 4)
    groups.push(Number.parseInt(hex.slice(i, i + 4), 16).toString(16));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestStart === -1) return groups.join(":");
  const head = groups.slice(0, bestStart).join(":");
  const tail = groups.slice(bestStart + bestLength).join(":");
  return `${head}::${tail}`;
}

// ---------------------------------------------------------------------------------------------
// Storage

interface BlockRef {
  /** Name under /sys/class/block: `sda1`, `dm-0`, `nvme0n1p2`. */
  name: string;
  /** What the operator knows it as: `sda1`, `vg0-root` for /dev/mapper/vg0-root. */
  label: string;
}

interface StorageItem {
  kind: "mount" | "swap";
  mountpoint: string;
  device: BlockRef;
}

/** Block devices behind mounted filesystems and active swap partitions (tmpfs, proc, overlay… and
 * swap files have no /dev device and are skipped: a swap file's filesystem is a mount). */
function readStorageInUse(root: string, problems: HostReadProblem[]): StorageItem[] {
  const items: StorageItem[] = [];
  const mounts =
    readSmallFile(root, READ.mounts, problems, "disk controllers in use not detected") ?? "";
  let mountinfo: string | null | undefined;
  for (const line of mounts.split("\n")) {
    const [source, mountpoint] = line.split(" ");
    if (!source?.startsWith("/dev/") || !mountpoint) continue;
    const point = unescapeMount(mountpoint);
    let device = resolveBlockDevice(root, source);
    if (device === null) {
      // `/dev/root` (booted without an initramfs) and other names that are not in /dev: ask
      // mountinfo for the mount's major:minor.
      mountinfo ??= readSmallFile(root, READ.mountinfo, problems, "");
      device = blockFromMountinfo(root, mountinfo ?? "", point);
    }
    if (device === null) {
      problems.push({
        kind: "malformed",
        path: READ.mounts,
        address: null,
        message: `cannot find the block device ${source} (mounted on ${point}) under ${READ.block}; its disk controller is not protected from rebind`,
      });
      continue;
    }
    items.push({ kind: "mount", mountpoint: point, device });
  }
  const swaps = readSmallFile(root, READ.swaps, problems, "swap devices not detected") ?? "";
  for (const line of swaps.split("\n").slice(1)) {
    const [file, type] = line.trim().split(/\s+/);
    if (!file?.startsWith("/dev/") || type !== "partition") continue;
    const device = resolveBlockDevice(root, unescapeMount(file));
    if (device) items.push({ kind: "swap", mountpoint: "swap", device });
  }
  return items;
}

/**
 * Block devices something else is built on: a non-empty `holders/` (an md array's member, an LVM
 * physical volume, a dm-crypt or multipath device's backing disk, a bcache backing device). The
 * host uses such a disk whether or not anything is mounted: an unmounted LVM volume may be a VM's
 * disk, an md array may be assembled for later, and a recording may have no /proc/mounts at all.
 */
function readHeldBlockDevices(
  root: string,
  problems: HostReadProblem[],
): Array<{ device: BlockRef; holders: string[] }> {
  const held: Array<{ device: BlockRef; holders: string[] }> = [];
  for (const name of (listDir(root, READ.block, problems) ?? []).sort()) {
    const holders = listDir(root, `${READ.block}/${name}/holders`, []) ?? [];
    if (holders.length === 0) continue;
    held.push({
      device: { name, label: blockLabel(root, name) },
      holders: holders.sort().map((h) => blockLabel(root, h)),
    });
  }
  return held;
}

/** What the operator knows a block device as: a dm device by its mapper name, others by name. */
function blockLabel(root: string, name: string): string {
  if (!name.startsWith("dm-")) return name;
  return readSmallFile(root, `${READ.block}/${name}/dm/name`, [], "") || name;
}

/** `\040` → space, as the kernel escapes /proc/mounts fields. */
function unescapeMount(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) =>
    String.fromCharCode(Number.parseInt(octal, 8)),
  );
}

/** A /dev path → its /sys/class/block entry: follows /dev symlinks (/dev/mapper/x → ../dm-0),
 * then the name itself, then a dm device whose `dm/name` is the mapper name. */
function resolveBlockDevice(root: string, devPath: string): BlockRef | null {
  const label = devPath.startsWith("/dev/mapper/")
    ? devPath.slice("/dev/mapper/".length)
    : devPath.slice(5);
  const exists = (name: string): boolean => existsSync(under(root, `${READ.block}/${name}`));
  const real = realHostPath(root, devPath);
  const realName = real?.slice(real.lastIndexOf("/") + 1);
  if (realName && exists(realName)) return { name: realName, label };
  const base = devPath.slice(devPath.lastIndexOf("/") + 1);
  if (base && exists(base)) return { name: base, label };
  if (devPath.startsWith("/dev/mapper/")) {
    for (const name of listDir(root, READ.block, []) ?? []) {
      if (!name.startsWith("dm-")) continue;
      const dmName = readSmallFile(root, `${READ.block}/${name}/dm/name`, [], "");
      if (dmName === label) return { name, label };
    }
  }
  return null;
}

function blockFromMountinfo(root: string, mountinfo: string, mountpoint: string): BlockRef | null {
  for (const line of mountinfo.split("\n")) {
    const f = line.split(" ");
    if (f.length < 5 || unescapeMount(f[4]!) !== mountpoint) continue;
    const resolved = realHostPath(root, `${READ.devBlock}/${f[2]}`);
    if (resolved === null) continue;
    const name = resolved.slice(resolved.lastIndexOf("/") + 1);
    return { name, label: name };
  }
  return null;
}

/** The PCI controllers under a block device, through dm/md `slaves/` and NVMe multipath heads;
 * `via` names the physical block device that led there. */
function storageControllers(
  root: string,
  device: BlockRef,
): Array<{ address: string; via: string }> {
  const found: Array<{ address: string; via: string }> = [];
  const seen = new Set<string>();
  const walk = (name: string, depth: number): void => {
    if (seen.has(name) || depth > 16) return;
    seen.add(name);
    const resolved = realHostPath(root, `${READ.block}/${name}`);
    if (resolved === null) return;
    const address = pciAddressesInPath(resolved).at(-1);
    if (address) {
      if (!found.some((f) => f.address === address)) found.push({ address, via: name });
      return;
    }
    // A partition of a dm/md device keeps `slaves/` on its parent disk.
    const dirs = [resolved, resolved.slice(0, resolved.lastIndexOf("/"))];
    for (const dir of dirs) {
      const slaves = listDir(root, `${dir}/slaves`, []);
      if (slaves && slaves.length > 0) {
        for (const slave of slaves) walk(slave, depth + 1);
        return;
      }
    }
    // Native NVMe multipath: /sys/devices/virtual/nvme-subsystem/nvme-subsysN/nvme0n1 (no PCI in
    // the path); the subsystem dir links each controller (`nvme0` → …/0000:3b:00.0/nvme/nvme0).
    const subsys = /^(.*\/nvme-subsystem\/nvme-subsys\d+)\//.exec(resolved)?.[1];
    if (subsys) {
      for (const entry of listDir(root, subsys, []) ?? []) {
        if (!/^nvme\d+$/.test(entry)) continue;
        const controller = realHostPath(root, `${subsys}/${entry}`);
        const address = controller ? pciAddressesInPath(controller).at(-1) : undefined;
        if (address && !found.some((f) => f.address === address))
          found.push({ address, via: name });
      }
    }
  };
  walk(device.name, 0);
  return found;
}
