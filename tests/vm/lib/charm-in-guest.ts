/**
 * The packed charm deployed inside a tier-1 guest, run the way Juju runs it: its `dispatch` with
 * Juju's environment and the unit simulator's fake hook tools, against the guest's real /sys and
 * /proc (PCI_PASSTHROUGH_ROOT=/). The simulator's state lives in a folder shared with the host, so
 * the test reads statuses and action results on the host side.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { createUnitSimulator, type UnitSimulator } from "ops-ts-shim/testing/simulator";
import { type Guest, shellQuote } from "./guest";
import { REPO, VM_CACHE } from "./paths";

export const PACKED_CHARM = path.join(REPO, "build", "pci-passthrough.charm");

/** A host folder for a guest's share (not under /tmp: the guest mounts a tmpfs there). */
export function shareDir(name: string): string {
  const dir = path.join(VM_CACHE, "share", name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export interface GuestUnit {
  sim: UnitSimulator;
  charmDir: string;
  /** Runs one event (hook or action) in the guest; resolves with dispatch's exit and output. */
  dispatch(
    event: Parameters<UnitSimulator["env"]>[0],
  ): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  /** update-grub / update-initramfs the charm ran (recorded by stand-ins: tier 1 has no grub). */
  commands(): string[];
}

/** Unpacks the packed charm into the share and wires a simulated unit around it. */
export async function deployCharmInGuest(
  guest: Guest,
  share: string,
  config: Record<string, unknown>,
): Promise<GuestUnit> {
  // The bed's root is this machine's, which may itself be a container: its marker (/.dockerenv)
  // would make the charm refuse host preparation. The guest is a real machine; drop the marker
  // from the guest's overlay (the host's file is untouched).
  await guest.exec("rm -f /.dockerenv /run/systemd/container");
  if (!fs.existsSync(PACKED_CHARM)) throw new Error(`${PACKED_CHARM} is missing: run npm run pack`);
  const charmDir = path.join(share, "charm");
  fs.mkdirSync(charmDir, { recursive: true });
  execFileSync("unzip", ["-q", "-o", PACKED_CHARM, "-d", charmDir]);
  const sim = createUnitSimulator({
    dir: path.join(share, "unit"),
    charmDir,
    unitName: "pci-passthrough/0",
    principalUnit: "nova-compute/0",
    configYaml: fs.readFileSync(path.join(charmDir, "config.yaml"), "utf8"),
    config,
  });
  // The bed guest is the host's root with the guest's own /sys and a tmpfs /etc; it has no grub
  // and no initramfs-tools of its own, so those two are recording stand-ins (tier 2 runs the real
  // ones). modprobe is the real one: rebind loads vfio-pci with it.
  const fakes = path.join(share, "fakecmds");
  const log = path.join(share, "commands.log");
  fs.mkdirSync(fakes, { recursive: true });
  for (const tool of ["update-grub", "update-initramfs"]) {
    fs.writeFileSync(path.join(fakes, tool), `#!/bin/sh\necho "\${0##*/} $*" >> '${log}'\n`, {
      mode: 0o755,
    });
  }
  return {
    sim,
    charmDir,
    async dispatch(event) {
      const env = sim.env(event, {
        path: `${fakes}:/usr/sbin:/usr/bin:/sbin:/bin`,
        extra: { PCI_PASSTHROUGH_ROOT: "/" },
      });
      const assignments = Object.entries(env)
        .filter((e): e is [string, string] => typeof e[1] === "string")
        .map(([k, v]) => `${k}=${shellQuote(v)}`)
        .join(" ");
      return guest.run(`env -i ${assignments} ${shellQuote(path.join(charmDir, "dispatch"))}`, {
        timeoutMs: 120_000,
      });
    },
    commands: () =>
      fs.existsSync(log)
        ? fs
            .readFileSync(log, "utf8")
            .split("\n")
            .filter(Boolean)
            .map((l) => l.trim())
        : [],
  };
}
