// The bad-input corpora (tests/fixtures/bad-config, tests/fixtures/bad-action-params) as data, and
// real host trees matching the host facts their unit tests assume (tests/support/host-facts.ts
// seedHost: same addresses, ids, drivers, groups and modules.alias lines), so each case can also
// go through the charm itself, end to end.
import * as fs from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import type { HostSpec, PciSpec } from "../hosts/build-host";

const FIXTURES = path.join(__dirname, "..", "..", "fixtures");

export interface ConfigCase {
  file: string;
  option: string;
  expect: string;
  /** Undefined: refused by the config parser on any host; else the host it needs. */
  host?: "seed" | "seed-swapped" | "seed-no-vfio";
  /** Stored address → "vendor:device" the charm bound in an earlier hook. */
  previous?: Record<string, string>;
  config: Record<string, unknown>;
}

export interface ActionCase {
  file: string;
  action: "rebind" | "list-devices" | "verify-iommu";
  expect: string;
  params: unknown;
}

function load<T>(dir: string): T[] {
  const full = path.join(FIXTURES, dir);
  return fs
    .readdirSync(full)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map(
      (file) =>
        ({ file, ...(parse(fs.readFileSync(path.join(full, file), "utf8")) as object) }) as T,
    );
}

export const configCases = (): ConfigCase[] => load<ConfigCase>("bad-config");
export const actionCases = (): ActionCase[] => load<ActionCase>("bad-action-params");

/** The lines of host-facts' MODULES_ALIAS (a real 6.8 modules.alias, trimmed). */
const ALIAS_LINES = [
  "alias pci:v000010DEd*sv*sd*bc03sc*i* nouveau",
  "alias pci:v000010DEd*sv*sd*bc03sc*i* nvidiafb",
  "alias pci:v*d*sv*sd*bc04sc03i00* snd_hda_intel",
  "alias pci:v00008086d0000A1F0sv*sd*bc*sc*i* snd_hda_intel",
  "alias pci:v00001A03d00002000sv*sd*bc*sc*i* ast",
  "alias pci:v00008086d000037D2sv*sd*bc*sc*i* i40e",
  "alias pci:v00008086d00001593sv*sd*bc*sc*i* ice",
  "alias pci:v00008086d00001592sv*sd*bc*sc*i* ice",
  "alias pci:v00008086d00001889sv*sd*bc*sc*i* iavf",
  "alias pci:v*d*sv*sd*bc01sc06i01* ahci",
  "alias pci:v*d*sv*sd*bc01sc08i02* nvme",
  "alias pci:v*d*sv*sd*bc0Csc03i30* xhci_pci",
  "alias pci:v000010DEd*sv*sd*bc0Csc80i00* ucsi_ccg",
  "alias pci:v00001002d*sv*sd*bc03sc*i* amdgpu",
  "alias pci:v00001022d*sv*sd*bc04sc03i* snd_hda_intel",
  "alias pci:v000015B3d0000101Dsv*sd*bc*sc*i* mlx5_core",
];

const GRUB = `GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX=""
`;

/** host-facts' seedHost as a real tree: two Quadro P5000 with HDMI audio behind root ports,
 * the ASPEED console GPU, onboard audio, AHCI, two i40e ports (eno1 up, the management NIC). */
export function corpusSeedHost(variant: ConfigCase["host"] = "seed"): HostSpec {
  const p = (address: string, ids: string, cls: string, extra: Partial<PciSpec> = {}): PciSpec => {
    const [vendor = "", device = ""] = ids.split(":");
    return { address, vendor, device, class: cls, subsystemVendor: "0000", ...extra };
  };
  const gpu83: PciSpec =
    variant === "seed-swapped"
      ? p("0000:83:00.0", "8086:1593", "020000", {
          driver: "ice",
          iommuGroup: 60,
          numaNode: 1,
          parent: "0000:80:02.0",
        })
      : p("0000:83:00.0", "10de:1bb0", "030000", {
          driver: "nouveau",
          iommuGroup: 60,
          numaNode: 1,
          parent: "0000:80:02.0",
        });
  return {
    cpu: "intel",
    kernelRelease: "6.8.0-45-generic",
    cmdline: "BOOT_IMAGE=/vmlinuz-6.8.0-45-generic root=LABEL=cloudimg-rootfs ro console=ttyS0",
    pci: [
      p("0000:00:00.0", "8086:2020", "060000", { iommuGroup: 0 }),
      p("0000:00:17.0", "8086:a182", "010601", { driver: "ahci", iommuGroup: 8 }),
      p("0000:00:1f.3", "8086:a1f0", "040300", { driver: "snd_hda_intel", iommuGroup: 9 }),
      p("0000:02:00.0", "1a03:2000", "030000", { driver: "ast", iommuGroup: 11, bootVga: true }),
      p("0000:3d:00.0", "8086:37d2", "020000", { driver: "i40e", iommuGroup: 30 }),
      p("0000:3d:00.1", "8086:37d2", "020000", { driver: "i40e", iommuGroup: 31 }),
      p("0000:80:02.0", "8086:2032", "060400", { driver: "pcieport", iommuGroup: 50 }),
      p("0000:80:03.0", "8086:2033", "060400", { driver: "pcieport", iommuGroup: 51 }),
      gpu83,
      p("0000:83:00.1", "10de:10f0", "040300", {
        driver: "snd_hda_intel",
        iommuGroup: 60,
        numaNode: 1,
        parent: "0000:80:02.0",
      }),
      p("0000:84:00.0", "10de:1bb0", "030000", {
        driver: "nouveau",
        iommuGroup: 61,
        numaNode: 1,
        parent: "0000:80:03.0",
      }),
      p("0000:84:00.1", "10de:10f0", "040300", {
        driver: "snd_hda_intel",
        iommuGroup: 61,
        numaNode: 1,
        parent: "0000:80:03.0",
      }),
    ],
    iommuUnits: [{ name: "dmar0" }, { name: "dmar1" }],
    net: [
      { name: "eno1", pci: "0000:3d:00.0", up: true, ipv4: ["10.0.0.5/24"], gateway4: "10.0.0.1" },
      { name: "eno2", pci: "0000:3d:00.1", up: false },
    ],
    modules: { alias: ALIAS_LINES },
    vfioPci: variant === "seed-no-vfio" ? "missing" : "builtin",
    files: { "/etc/default/grub": GRUB },
  };
}
