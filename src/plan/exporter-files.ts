// The exporter's two files, from the same HostPlan the hook applies: the summary it compares the
// live host with at each scrape (what each planned function and PF should be, the kernel
// parameters written), and the systemd unit that runs it. Pure: the runtime and charm paths come
// in as parameters; apply writes the bytes like any owned file.
//
// Why a summary of the plan and not the config: planning needs modules.alias, the host's usage
// and the whole PCI tree (hundreds of ms at 10,000 functions), and a scrape must not decide
// anything the hook did not. The exporter reports the hook's decision against the live host.
import { EXPORTER_OWNED, EXPORTER_SERVICE } from "../host/root";
import type { FileSpec, HostPlan } from "./types";

/** Where the exporter listens: loopback only. The agent that scrapes it (grafana-agent,
 * opentelemetry-collector) is a subordinate on the same machine; nothing else needs the port. */
export const EXPORTER_LISTEN_HOST = "127.0.0.1";

/** The runtime's flags for the exporter, on its command line (V8's tiering flags are not allowed
 * in NODE_OPTIONS). Each measured by bench/exporter.ts (README "Observability" has the numbers):
 * - `--no-opt --no-maglev`: Sparkplug, V8's baseline compiler, and no optimising one. TurboFan and
 *   Maglev page 8 MiB of the runtime's own code into memory and keep their zones and code: with
 *   them the peak is 70 / 89 MiB at 1,000 / 10,000 functions, without 53 / 56 MiB (budget 60),
 *   for 20% / 55% more CPU a scrape (36 / 175 ms; budget 50 / 300 ms of wall).
 * - `--max-semi-space-size=1`: a 1 MiB young generation; V8's default let the heap reach 140 MiB
 *   at 10,000 functions.
 * - `--max-old-space-size=64`: ten times what a scrape at 10,000 functions keeps alive; a leak
 *   hits it and systemd restarts the exporter.
 * - `--expose-gc`: the exporter collects once after it reads a new plan (server.ts). */
export const EXPORTER_NODE_FLAGS = [
  "--no-opt",
  "--no-maglev",
  "--max-semi-space-size=1",
  "--max-old-space-size=64",
  "--expose-gc",
] as const;

/** What the exporter is told, as JSON (EXPORTER_OWNED.plan). Short keys: 10,000 functions. */
export interface ExporterPlan {
  /** The managed-by header (JSON has no comments); apply recognises its own files by it. */
  comment: string;
  version: 1;
  /** Kernel parameters the grub drop-in appends: each missing from /proc/cmdline means the boot
   * that takes them has not happened yet. */
  kernelParams: string[];
  /** Every function planned for vfio-pci: address, "vvvv:dddd", alias, PF address for a VF. */
  functions: Array<{ a: string; ids: string; alias: string; pf?: string }>;
  /** PFs given VFs at boot: how many, where they appear, and on which driver they belong. */
  pfs: Array<{
    a: string;
    ids: string;
    alias: string;
    vfs: number;
    vfDriver: "vfio-pci" | "host";
    vfAddresses: string[];
  }>;
  /** Selected functions the plan leaves with the host, and why. */
  withheld: Array<{ a: string; ids: string; reasons: string[] }>;
}

export const EXPORTER_PLAN_COMMENT =
  "Managed by the pci-passthrough charm: the plan the exporter compares the host with. Rewritten by every hook; do not edit.";

/** The summary of a plan the exporter reads. */
export function summarisePlan(
  plan: Pick<HostPlan, "kernelParams" | "bind" | "sriov" | "withheld">,
): ExporterPlan {
  return {
    comment: EXPORTER_PLAN_COMMENT,
    version: 1,
    kernelParams: [...plan.kernelParams],
    functions: plan.bind.map((d) => ({
      a: d.address,
      ids: `${d.vendorId}:${d.deviceId}`,
      alias: d.alias,
      ...(d.physfn !== undefined ? { pf: d.physfn } : {}),
    })),
    pfs: plan.sriov.map((pf) => ({
      a: pf.address,
      ids: `${pf.vendorId}:${pf.deviceId}`,
      alias: pf.alias,
      vfs: pf.numVfs,
      vfDriver: pf.vfDriver,
      vfAddresses: [...pf.vfAddresses],
    })),
    withheld: plan.withheld.map((w) => ({
      a: w.address,
      ids: `${w.vendorId}:${w.deviceId}`,
      reasons: [...w.reasons],
    })),
  };
}

/** Where the exporter's program is and where it listens. */
export interface ExporterSettings {
  port: number;
  /** The Node.js runtime dispatch chose for this hook (the charm's own runtime/bin/node). */
  nodePath: string;
  /** JUJU_CHARM_DIR: dist/exporter.js lives under it. */
  charmDir: string;
}

/** The systemd unit that runs the exporter. */
export function renderExporterUnit(settings: ExporterSettings): string {
  const quote = (s: string) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : JSON.stringify(s));
  const listen = `${EXPORTER_LISTEN_HOST}:${settings.port}`;
  return [
    "# Managed by the pci-passthrough charm; rewritten by its hooks, removed with it. Do not edit:",
    "# set the charm's exporter-port option instead.",
    "[Unit]",
    `Description=pci-passthrough exporter: this host's PCI passthrough state for Prometheus on ${listen}`,
    "After=local-fs.target",
    "",
    "[Service]",
    `ExecStart=${quote(settings.nodePath)} ${EXPORTER_NODE_FLAGS.join(" ")} ${quote(`${settings.charmDir}/dist/exporter.js`)} --listen ${listen}`,
    // It reads sysfs and /proc/<pid>/fd (who holds /dev/vfio/<group>): root, writing nothing.
    "Restart=always",
    "RestartSec=5",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=read-only",
    "PrivateTmp=yes",
    "MemoryMax=256M",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/** The exporter's files for a plan. */
export function renderExporterFiles(
  plan: Pick<HostPlan, "kernelParams" | "bind" | "sriov" | "withheld">,
  settings: ExporterSettings,
): FileSpec[] {
  return [
    { path: EXPORTER_OWNED.plan, content: `${JSON.stringify(summarisePlan(plan))}\n`, mode: 0o644 },
    { path: EXPORTER_OWNED.unit, content: renderExporterUnit(settings), mode: 0o644 },
  ];
}

/** systemctl calls that follow what apply did to the unit file. */
export function exporterServiceCommands(
  unitAction: "created" | "updated" | "removed" | "unchanged" | "absent" | "kept" | undefined,
): string[][] {
  switch (unitAction) {
    case "created":
    case "updated":
      return [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", EXPORTER_SERVICE],
        ["systemctl", "restart", EXPORTER_SERVICE],
      ];
    case "removed":
      return [["systemctl", "daemon-reload"]];
    default:
      return [];
  }
}
