// What the host itself is using, by PCI address, in operator words: the rebind action refuses to
// take these (unless forced) and verify-iommu flags groups that contain them.
//
// Sources, files wherever they suffice (so a copied host tree answers too):
// - network: /sys/class/net/<if> (flags, operstate, master/upper links, device link);
//   IPv6 addresses from /proc/net/if_inet6; routes from /proc/net/route and /proc/net/ipv6_route.
// - IPv4 addresses: procfs has no per-interface IPv4 list. The files give a guess: the LOCAL
//   leaves of /proc/net/fib_trie (every address the host owns), each given to the interface whose
//   connected route (no gateway) in /proc/net/route covers it, longest prefix first. The guess is
//   wrong when two interfaces share a subnet (both addresses go to the first route's interface),
//   and cannot place an address without a connected route (a /32 with `noprefixroute`, a
//   point-to-point peer, any address of an interface that is down: the kernel drops its routes).
//   The guess decides nothing: it places an address only on an interface that carries a route,
//   in use already. What it misses matters only for an interface the files show no use of (not
//   up, no route, no master or upper device, no IPv6 address): "undecided" (undecidedByFiles).
//   For those the kernel says which interface holds each address: `ip -j -4 addr show`
//   (iproute2; netlink), asked on a real host (root `/`) only, and only when a judgement asks
//   about a function behind an undecided interface (judgeWithHostUsage; readHostUsage asks about
//   every function); its answer then replaces the guess for every interface. A no-op hook whose
//   selection and its group mates have no undecided interface spawns nothing. Not
//   os.networkInterfaces(): libuv leaves out every interface that is not up and running, the
//   undecided ones exactly. Where `ip` is missing or fails (a busybox userland), the guess stands.
// - storage: /proc/mounts and /proc/swaps, and every block device with `holders/` (md members,
//   LVM PVs, dm-crypt and bcache backing devices), through /sys/class/block/<name> into the device
//   tree; dm and md devices through their `slaves/`, native NVMe multipath through the subsystem's
//   controllers. The leaf PCI controller is reported; bridges above it are not (they are never
//   passthrough targets, and listing them would make every device behind them look "in use").
// - console: `boot_vga`, the console framebuffer fb0 (fbcon maps every console to fb0 unless
//   booted with fbcon=map:, which is not read), and the DRM card behind fb0 — only that one: every
//   GPU with a DRM driver has a card, which says nothing about the host using it. A firmware
//   framebuffer (vesafb, efifb, simplefb) hangs off a platform device: see firmwareConsoleGuess.

import { pciAddressesInPath } from "../pci-vocabulary";
import type { HostReadProblem, HostUsage, NetInterface, PciFunction } from "./facts";
import { existsSync, markVolatile, readlinkSync, realpathSync } from "./fs";
import { readPciFunctions } from "./pci";
import { listDir, readSmallFile } from "./read-files";
import { isRealRoot, READ, under } from "./root";

const IFF_UP = 0x1;

/** Runs `ip -j -4 addr show` and returns its stdout, or null when it could not (no `ip`, no JSON
 * support in a busybox `ip`, a non-zero exit). A parameter of the readers for tests. */
export type IpAddrJson = () => string | null;

const runIpAddrJson: IpAddrJson = () => {
  // child_process (and the net and stream modules it loads) costs milliseconds: loaded only when
  // a judgement needs the kernel's IPv4 addresses (see the header).
  const { spawnSync } = require("node:child_process") as typeof import("node:child_process");
  // The kernel's answer is an input no memo can replay (src/quiet/): a hook that asks is run in
  // full next time too.
  markVolatile("it asked `ip` for the IPv4 addresses");
  const r = spawnSync("ip", ["-j", "-4", "addr", "show"], { encoding: "utf8", timeout: 10_000 });
  return r.status === 0 && r.stdout ? r.stdout : null;
};

/** The kernel asked on a real host, nothing under a test root (the files stand for it). */
const defaultIpAddrJson = (root: string): IpAddrJson | null =>
  isRealRoot(root) ? runIpAddrJson : null;

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

/** The kernel's IPv4 addresses by interface, or null when it could not say. */
function kernelIpv4(ipAddrJson: IpAddrJson): Map<string, string[]> | null {
  const text = ipAddrJson();
  return text === null ? null : parseIpAddrJson(text);
}

/** The interfaces as the files show them, with the IPv6 addresses apart so that the kernel's IPv4
 * answer can replace the files' guess without reading anything again. */
interface NetFiles {
  /** Addresses: IPv4 as the files guess them (see the header), then IPv6. */
  interfaces: NetInterface[];
  ipv6: Map<string, string[]>;
}

function readNetFiles(root: string, problems: HostReadProblem[]): NetFiles {
  const names = (listDir(root, READ.net, problems) ?? []).sort();
  const routesV4 = readIpv4Routes(root, problems);
  const routes = countRoutes(root, routesV4, problems);
  const guessed = new Map<string, string[]>();
  for (const address of readLocalIpv4(root, problems)) {
    const name = interfaceForIpv4(address, routesV4);
    if (name) addTo(guessed, name, address);
  }
  const ipv6 = new Map<string, string[]>();
  for (const [name, address] of readIpv6Addresses(root, problems)) addTo(ipv6, name, address);

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
    const pciAddress = deviceAddress(root, `${hostDir}/device`);
    interfaces.push({
      name,
      pciAddress,
      adminUp: Number.isInteger(flags) && (flags & IFF_UP) !== 0,
      operstate:
        readSmallFile(root, `${hostDir}/operstate`, problems, "operstate unknown") ?? "unknown",
      master: linkName(root, `${hostDir}/master`),
      uppers: pciAddress === null ? [] : upperDevices(root, name),
      addresses: joined(guessed.get(name), ipv6.get(name)),
      routes: routes.get(name) ?? 0,
    });
  }
  return { interfaces, ipv6 };
}

/** The interfaces with the kernel's IPv4 addresses in place of the files' guess. */
function withKernelIpv4(files: NetFiles, kernel: Map<string, string[]>): NetInterface[] {
  return files.interfaces.map((net) => ({
    ...net,
    addresses: joined(kernel.get(net.name), files.ipv6.get(net.name)),
  }));
}

function addTo(lists: Map<string, string[]>, name: string, address: string): void {
  const list = lists.get(name);
  if (!list) lists.set(name, [address]);
  else if (!list.includes(address)) list.push(address);
}

function joined(v4: string[] = [], v6: string[] = []): string[] {
  return [...v4, ...v6];
}

/** Reads every network interface with its flags, master, PCI device, addresses and route count.
 * `ipAddrJson` asks the kernel for each interface's IPv4 addresses (see the header); by default
 * on a real host only (root `/`). */
export function readNetInterfaces(
  root: string,
  problems: HostReadProblem[] = [],
  ipAddrJson: IpAddrJson | null = defaultIpAddrJson(root),
): NetInterface[] {
  resolvedRoot = null;
  const files = readNetFiles(root, problems);
  const kernel = ipAddrJson ? kernelIpv4(ipAddrJson) : null;
  return kernel ? withKernelIpv4(files, kernel) : files.interfaces;
}

/** Whether the files show the host using this interface: the same evidence networkUses reports. */
function filesShowUse(net: NetInterface): boolean {
  return (
    net.adminUp ||
    net.addresses.length > 0 ||
    net.routes > 0 ||
    net.master !== null ||
    net.uppers.length > 0
  );
}

/**
 * The PCI functions behind an interface the files show no use of: not up, no route, no master or
 * upper device, no address they know. Only an IPv4 address the kernel holds on such an interface
 * can make its function "in use" (or add a reason to it); every other interface's judgement is
 * already final. An interface that is up is in use by "is up" whatever its addresses.
 */
export function undecidedByFiles(interfaces: readonly NetInterface[]): Set<string> {
  const undecided = new Set<string>();
  for (const net of interfaces) {
    if (net.pciAddress !== null && !filesShowUse(net)) undecided.add(net.pciAddress);
  }
  return undecided;
}

/** Whether the kernel's IPv4 answer could change a judgement that asked about `asked`: some
 * function it asked about is behind an undecided interface. */
export function kernelIpv4Matters(
  undecided: ReadonlySet<string>,
  asked: Iterable<string>,
): boolean {
  if (undecided.size === 0) return false;
  for (const address of asked) if (undecided.has(address)) return true;
  return false;
}

/** What the host uses as the files show it, and how to complete it from the kernel. */
export interface UsageReading {
  /** What the host uses, IPv4 addresses as the files guess them: whether a function is in use
   * is final for every function outside `undecided` (the words may carry the guess). */
  usage: HostUsage;
  /** Functions behind an interface the files show no use of (undecidedByFiles). */
  undecided: ReadonlySet<string>;
  /** The usage with the kernel's IPv4 addresses: asks `ip` (once; later calls answer the same),
   * and returns `usage` itself when there is no kernel to ask, it cannot answer, or nothing is
   * undecided. */
  withKernelIpv4(): HostUsage;
}

interface UsageOptions {
  functions?: PciFunction[];
  /** Interfaces read already (readNetInterfaces): taken as final, the kernel is not asked. */
  netInterfaces?: NetInterface[];
  problems?: HostReadProblem[];
  /** How to ask the kernel for IPv4 addresses; default: `ip` on a real host, none elsewhere. */
  ipAddrJson?: IpAddrJson | null;
}

/** What the host uses by the files alone; the kernel is asked later, and only if a judgement
 * needs it (judgeWithHostUsage). */
export function readHostUsageFromFiles(root: string, options: UsageOptions = {}): UsageReading {
  resolvedRoot = null;
  const problems = options.problems ?? [];
  const functions = options.functions ?? readPciFunctions(root).functions;
  const files: NetFiles = options.netInterfaces
    ? { interfaces: options.netInterfaces, ipv6: new Map() }
    : readNetFiles(root, problems);
  const others = otherUses(root, functions, problems);
  const usage = composeUsage(files.interfaces, others);
  const undecided = options.netInterfaces ? new Set<string>() : undecidedByFiles(files.interfaces);
  const ask = options.ipAddrJson === undefined ? defaultIpAddrJson(root) : options.ipAddrJson;
  let completed: HostUsage | null = null;
  return {
    usage,
    undecided,
    withKernelIpv4() {
      if (completed) return completed;
      const kernel = ask && undecided.size > 0 ? kernelIpv4(ask) : null;
      completed = kernel ? composeUsage(withKernelIpv4(files, kernel), others) : usage;
      return completed;
    },
  };
}

/** Which PCI functions the host uses for itself, each with its reasons in operator words: every
 * function judged (list-devices shows them all), the kernel asked when anything is undecided. */
export function readHostUsage(root: string, options: UsageOptions = {}): HostUsage {
  return readHostUsageFromFiles(root, options).withKernelIpv4();
}

/**
 * Runs a judgement (a plan) on what the host uses, asking the kernel only when it must: first on
 * the files' answer, noting each function the judgement asks about; if one of them is undecided
 * (kernelIpv4Matters), the kernel is asked, and the judgement runs again only if the answer
 * changed what it asked about. Every function it asks about is then judged in use exactly as on
 * the kernel's answer from the start; only the words of an interface the files already show in
 * use may carry their guess of its IPv4 addresses (see the header). `judge` must be pure: it may
 * run twice.
 */
export function judgeWithHostUsage<T>(reading: UsageReading, judge: (usage: HostUsage) => T): T {
  const noted = new NotedUsage(reading.usage);
  const first = judge(noted);
  // A walk over the whole map asked about every function, the undecided ones too.
  const asked = noted.everything ? null : noted.asked;
  if (!kernelIpv4Matters(reading.undecided, asked ?? reading.undecided)) return first;
  const usage = reading.withKernelIpv4();
  const addresses = asked ?? new Set([...reading.usage.keys(), ...usage.keys()]);
  for (const address of addresses) {
    if (!sameReasons(usage.get(address), reading.usage.get(address))) return judge(usage);
  }
  return first;
}

function sameReasons(a: string[] = [], b: string[] = []): boolean {
  return a.length === b.length && a.every((reason, i) => reason === b[i]);
}

/**
 * The usage as data (a Map: the plan takes nothing else, tests/unit/plan-inputs-are-data.test.ts)
 * that notes which functions a judgement asked about. Asking by address notes the address; a walk
 * over the whole map, or its size, counts as asking about every function.
 */
class NotedUsage extends Map<string, string[]> {
  readonly asked = new Set<string>();
  everything = false;

  override get(address: string): string[] | undefined {
    this.asked.add(address);
    return super.get(address);
  }

  override has(address: string): boolean {
    this.asked.add(address);
    return super.has(address);
  }

  override get size(): number {
    this.everything = true;
    return super.size;
  }

  override forEach(
    callback: (reasons: string[], address: string, map: Map<string, string[]>) => void,
    thisArg?: unknown,
  ): void {
    this.everything = true;
    super.forEach(callback, thisArg);
  }

  override entries(): MapIterator<[string, string[]]> {
    this.everything = true;
    return super.entries();
  }

  override keys(): MapIterator<string> {
    this.everything = true;
    return super.keys();
  }

  override values(): MapIterator<string[]> {
    this.everything = true;
    return super.values();
  }

  override [Symbol.iterator](): MapIterator<[string, string[]]> {
    this.everything = true;
    return super[Symbol.iterator]();
  }
}

/** Every function's uses, network first (as operators read them), then the rest in order. */
function composeUsage(interfaces: NetInterface[], others: Array<[string, string]>): HostUsage {
  const usage: HostUsage = new Map();
  for (const [address, reason] of networkUses(interfaces)) addTo(usage, address, reason);
  for (const [address, reason] of others) addTo(usage, address, reason);
  return usage;
}

/** What each interface with a PCI device shows of the host using it. */
function networkUses(interfaces: NetInterface[]): Array<[string, string]> {
  const uses: Array<[string, string]> = [];
  for (const net of interfaces) {
    if (net.pciAddress === null) continue;
    const use = (reason: string) => uses.push([net.pciAddress!, reason]);
    const what = `network interface ${net.name}`;
    if (net.adminUp) use(`${what} is up`);
    if (net.addresses.length > 0) use(`${what} has addresses ${net.addresses.join(", ")}`);
    if (net.routes > 0) {
      use(`${what} carries ${net.routes} route${net.routes === 1 ? "" : "s"}`);
    }
    if (net.master) use(`${what} is enslaved to ${net.master}`);
    for (const upper of net.uppers) {
      if (upper !== net.master) use(`${what} is the lower device of ${upper}`);
    }
  }
  return uses;
}

/** Uses that are not network interfaces: boot VGA and SR-IOV, console, storage. */
function otherUses(
  root: string,
  functions: PciFunction[],
  problems: HostReadProblem[],
): Array<[string, string]> {
  const usage: HostUsage = new Map();
  const use = (address: string, reason: string): void => addTo(usage, address, reason);

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
  return [...usage].flatMap(([address, reasons]) =>
    reasons.map((reason): [string, string] => [address, reason]),
  );
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
 * realpath(3) itself (host/fs.ts: the JS realpathSync lstat()s every component of every path
 * from JavaScript, and sysfs paths are a dozen components deep). */
function realHostPath(root: string, hostPath: string): string | null {
  try {
    const real = realpathSync(under(root, hostPath));
    if (resolvedRoot?.root !== root) resolvedRoot = { root, real: realpathSync(root) };
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
