/**
 * Reads of the guest's real sysfs, for assertions after an action. Each helper runs a command in
 * the guest: nothing here trusts what an action reported about itself.
 */
import { type Guest, shellQuote } from "./guest";

const dev = (address: string) => `/sys/bus/pci/devices/${address}`;

/** The driver bound to a function ("" when none), read from its `driver` link. */
export async function driverOf(guest: Guest, address: string): Promise<string> {
  const out = await guest.exec(
    `l=${shellQuote(`${dev(address)}/driver`)}; if [ -e "$l" ]; then basename "$(readlink "$l")"; fi`,
  );
  return out.trim();
}

/** The IOMMU group number of a function, or undefined when it has none (IOMMU off). */
export async function groupOf(guest: Guest, address: string): Promise<number | undefined> {
  const out = await guest.exec(
    `l=${shellQuote(`${dev(address)}/iommu_group`)}; if [ -e "$l" ]; then basename "$(readlink "$l")"; fi`,
  );
  return out.trim() === "" ? undefined : Number(out.trim());
}

/** The addresses in an IOMMU group, sorted. */
export async function groupMembers(guest: Guest, group: number): Promise<string[]> {
  const out = await guest.exec(`ls /sys/kernel/iommu_groups/${group}/devices`);
  return out.split("\n").filter(Boolean).sort();
}

/** One sysfs attribute of a function, trimmed. */
export async function attr(guest: Guest, address: string, name: string): Promise<string> {
  return (await guest.readFile(`${dev(address)}/${name}`)).trim();
}

/** Several attributes of a function in one round trip; a missing one reads as undefined. */
export async function attrs(
  guest: Guest,
  address: string,
  names: string[],
): Promise<Record<string, string | undefined>> {
  const script = names
    .map(
      (n) =>
        `if [ -r ${shellQuote(`${dev(address)}/${n}`)} ]; then printf '%s=%s\\n' ${shellQuote(n)} "$(cat ${shellQuote(`${dev(address)}/${n}`)})"; fi`,
    )
    .join("\n");
  const out = await guest.exec(script);
  const found: Record<string, string | undefined> = {};
  for (const line of out.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) found[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return found;
}

/** Whether a path exists in the guest. */
export async function exists(guest: Guest, file: string): Promise<boolean> {
  return (await guest.run(`test -e ${shellQuote(file)}`)).exitCode === 0;
}

/** Names in a guest directory ([] when it does not exist). */
export async function list(guest: Guest, dir: string): Promise<string[]> {
  const r = await guest.run(`ls -1 ${shellQuote(dir)}`);
  return r.exitCode === 0 ? r.stdout.split("\n").filter(Boolean).sort() : [];
}

/** The network interface names of a PCI function. */
export async function netInterfaces(guest: Guest, address: string): Promise<string[]> {
  return list(guest, `${dev(address)}/net`);
}

/**
 * Binds a function to a driver by hand the way vfio-facts.md describes (override, unbind, probe);
 * an empty driver returns it to the kernel's default. For tests that set the scene, not for the
 * charm's own actions.
 */
export async function bindByHand(guest: Guest, address: string, driver: string): Promise<void> {
  const d = dev(address);
  await guest.exec(
    [
      driver === "vfio-pci" ? "modprobe vfio-pci" : ":",
      `echo ${shellQuote(driver)} > ${d}/driver_override`,
      `if [ -e ${d}/driver ]; then echo ${address} > ${d}/driver/unbind; fi`,
      // drivers_probe fails (EINVAL etc.) when no driver takes the device; the caller checks.
      `echo ${address} > /sys/bus/pci/drivers_probe || true`,
    ].join("\n"),
  );
}

/**
 * Everything a rebind could change, in one round trip and a handful of processes (each costs
 * ~50 ms under TCG): every function's driver link and driver_override, /dev/vfio, the loaded
 * modules, and what the guest wrote below /etc (tier 1: the overlay's upper layer).
 */
export async function guestStateSnapshot(guest: Guest): Promise<string> {
  return guest.exec(
    [
      "find /sys/bus/pci/devices/ -mindepth 2 -maxdepth 2 -name driver -printf '%p -> %l\\n' | sort",
      "grep -H . /sys/bus/pci/devices/*/driver_override",
      "echo /dev/vfio: $(ls /dev/vfio)",
      "echo modules: $(cut -d' ' -f1 /proc/modules | sort)",
      "find /run/vmbed/upper/etc -printf '%p %s %T@\\n' 2>/dev/null | sort",
    ].join("\n"),
  );
}
