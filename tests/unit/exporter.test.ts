// Issue 26: the exporter's scrape on real host trees: the plan the hook wrote (its summary) against
// sysfs and /proc read live, every metric in Prometheus' text format as Debian's promtool lints it.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { CHUNK_BYTES } from "../../src/exporter/render";
import { Exporter } from "../../src/exporter/server";
import { EXPORTER_OWNED, OWNED } from "../../src/host/root";
import { summarisePlan } from "../../src/plan/exporter-files";
import { useCleanups } from "../support/cleanups";
import { freePort } from "../support/free-port";
import { makeTempHost } from "../support/hosts/build-host";
import { seedHost, syntheticHost } from "../support/hosts/presets";
import { planOnTree } from "../support/plan-on-tree";
import { requireTool } from "../support/tools";

const RELEASE = "6.8.0-45-generic";
const BOOTED = `BOOT_IMAGE=/vmlinuz-${RELEASE} root=/dev/sda1 ro intel_iommu=on iommu=pt`;
const GPU = "0000:83:00.0";
const AUDIO = "0000:83:00.1";

const cleanups = useCleanups();

/** The seed host with the GPU and its audio on `driver`, booted with or without our parameters;
 * the plan for `devices: 0000:83:00.0` written where the charm writes it. */
function host(options: { driver: string; booted: boolean }): string {
  const spec = seedHost();
  const built = makeTempHost({
    ...spec,
    cmdline: options.booted ? BOOTED : undefined,
    pci: spec.pci!.map((p) =>
      p.address === GPU || p.address === AUDIO ? { ...p, driver: options.driver } : p,
    ),
  });
  cleanups.push(built.cleanup);
  const { plan } = planOnTree(built.root, { devices: GPU });
  const file = path.join(built.root, EXPORTER_OWNED.plan);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(summarisePlan(plan))}\n`);
  const dropIn = path.join(built.root, OWNED.grubDropIn);
  fs.mkdirSync(path.dirname(dropIn), { recursive: true });
  fs.writeFileSync(dropIn, "# Managed by the pci-passthrough charm\n");
  fs.utimesSync(dropIn, 1_700_000_000, 1_700_000_000);
  return built.root;
}

/** `name{labels} value` lines of a family, labels as written. */
function samples(text: string, name: string): string[] {
  return text.split("\n").filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

function promtoolLint(text: string): { status: number | null; output: string } {
  requireTool("promtool", "prometheus");
  const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  return { status: r.status, output: r.stdout + r.stderr };
}

describe("a healthy host", () => {
  it("every planned function on vfio-pci, its group viable, free; no reboot pending", () => {
    const text = new Exporter(host({ driver: "vfio-pci", booted: true })).scrape();
    expect(samples(text, "pci_passthrough_function_on_planned_driver")).toEqual([
      `pci_passthrough_function_on_planned_driver{address="${GPU}",ids="10de:1bb0",alias="gpu",driver="vfio-pci",planned_driver="vfio-pci"} 1`,
      `pci_passthrough_function_on_planned_driver{address="${AUDIO}",ids="10de:10f1",alias="gpu-audio",driver="vfio-pci",planned_driver="vfio-pci"} 1`,
    ]);
    expect(samples(text, "pci_passthrough_function_available")).toEqual([
      `pci_passthrough_function_available{address="${GPU}",ids="10de:1bb0",alias="gpu"} 1`,
      `pci_passthrough_function_available{address="${AUDIO}",ids="10de:10f1",alias="gpu-audio"} 1`,
    ]);
    expect(samples(text, "pci_passthrough_iommu_group_viable")).toEqual([
      'pci_passthrough_iommu_group_viable{iommu_group="42"} 1',
    ]);
    expect(samples(text, "pci_passthrough_reboot_pending")).toEqual([
      "pci_passthrough_reboot_pending 0",
    ]);
    expect(samples(text, "pci_passthrough_kernel_param_missing")).toEqual([]);
    expect(samples(text, "pci_passthrough_iommu_enabled")).toEqual([
      "pci_passthrough_iommu_enabled 1",
    ]);
    expect(samples(text, "pci_passthrough_plan_loaded")).toEqual(["pci_passthrough_plan_loaded 1"]);
    expect(samples(text, "pci_passthrough_exporter_scrape_errors_total")).toEqual([
      "pci_passthrough_exporter_scrape_errors_total 0",
    ]);
    expect(promtoolLint(text)).toEqual({ status: 0, output: "" });
  });

  it("a process holding /dev/vfio/42 makes both functions in use, then free when it lets go", () => {
    const root = host({ driver: "vfio-pci", booted: true });
    const exporter = new Exporter(root);
    const fd = path.join(root, "proc", "4242", "fd");
    fs.mkdirSync(fd, { recursive: true });
    fs.writeFileSync(
      path.join(root, "proc", "4242", "cmdline"),
      "qemu-system-x86_64\0-name\0guest=instance-0000002a\0",
    );
    fs.symlinkSync("/dev/vfio/42", path.join(fd, "31"));
    const held = exporter.scrape();
    expect(samples(held, "pci_passthrough_function_in_use")).toEqual([
      `pci_passthrough_function_in_use{address="${GPU}",ids="10de:1bb0",alias="gpu",iommu_group="42"} 1`,
      `pci_passthrough_function_in_use{address="${AUDIO}",ids="10de:10f1",alias="gpu-audio",iommu_group="42"} 1`,
    ]);
    expect(samples(held, "pci_passthrough_function_available").map((l) => l.slice(-2))).toEqual([
      " 0",
      " 0",
    ]);
    fs.rmSync(path.join(root, "proc", "4242"), { recursive: true });
    const free = exporter.scrape();
    expect(samples(free, "pci_passthrough_function_in_use").map((l) => l.slice(-2))).toEqual([
      " 0",
      " 0",
    ]);
    expect(samples(free, "pci_passthrough_function_available").map((l) => l.slice(-2))).toEqual([
      " 1",
      " 1",
    ]);
    expect(samples(free, "pci_passthrough_exporter_scrapes_total")).toEqual([
      "pci_passthrough_exporter_scrapes_total 2",
    ]);
  });
});

describe("a host that is not what the plan says", () => {
  it("names the driver holding the function, the group it blocks, and the missing parameters", () => {
    const text = new Exporter(host({ driver: "nouveau", booted: false })).scrape();
    expect(
      samples(text, "pci_passthrough_function_on_planned_driver").map((l) => l.slice(-2)),
    ).toEqual([" 0", " 0"]);
    expect(samples(text, "pci_passthrough_function_on_planned_driver")).toEqual([
      `pci_passthrough_function_on_planned_driver{address="${GPU}",ids="10de:1bb0",alias="gpu",driver="nouveau",planned_driver="vfio-pci"} 0`,
      `pci_passthrough_function_on_planned_driver{address="${AUDIO}",ids="10de:10f1",alias="gpu-audio",driver="nouveau",planned_driver="vfio-pci"} 0`,
    ]);
    expect(samples(text, "pci_passthrough_iommu_group_viable")).toEqual([
      'pci_passthrough_iommu_group_viable{iommu_group="42"} 0',
    ]);
    expect(samples(text, "pci_passthrough_iommu_group_blocker_info")).toEqual([
      `pci_passthrough_iommu_group_blocker_info{iommu_group="42",address="${GPU}",driver="nouveau"} 1`,
      `pci_passthrough_iommu_group_blocker_info{iommu_group="42",address="${AUDIO}",driver="nouveau"} 1`,
    ]);
    expect(samples(text, "pci_passthrough_kernel_param_missing")).toEqual([
      'pci_passthrough_kernel_param_missing{param="intel_iommu=on"} 1',
      'pci_passthrough_kernel_param_missing{param="iommu=pt"} 1',
    ]);
    expect(samples(text, "pci_passthrough_reboot_pending")).toEqual([
      "pci_passthrough_reboot_pending 1",
    ]);
    expect(samples(text, "pci_passthrough_reboot_pending_since_timestamp_seconds")).toEqual([
      "pci_passthrough_reboot_pending_since_timestamp_seconds 1700000000",
    ]);
    expect(promtoolLint(text)).toEqual({ status: 0, output: "" });
  });

  it("without the charm's plan says so, and the rest is still valid exposition", () => {
    const root = host({ driver: "vfio-pci", booted: true });
    fs.rmSync(path.join(root, EXPORTER_OWNED.plan));
    const text = new Exporter(root).scrape();
    expect(samples(text, "pci_passthrough_plan_loaded")).toEqual(["pci_passthrough_plan_loaded 0"]);
    expect(samples(text, "pci_passthrough_function_on_planned_driver")).toEqual([]);
    expect(promtoolLint(text).status).toBe(0);
  });

  it("a plan that is not JSON counts as no plan, and the next good one is read", () => {
    const root = host({ driver: "vfio-pci", booted: true });
    const file = path.join(root, EXPORTER_OWNED.plan);
    const good = fs.readFileSync(file, "utf8");
    const exporter = new Exporter(root);
    fs.writeFileSync(file, "{ not json");
    expect(samples(exporter.scrape(), "pci_passthrough_plan_loaded")).toEqual([
      "pci_passthrough_plan_loaded 0",
    ]);
    fs.writeFileSync(file, good);
    expect(samples(exporter.scrape(), "pci_passthrough_plan_loaded")).toEqual([
      "pci_passthrough_plan_loaded 1",
    ]);
  });
});

describe("a group mate the plan does not name", () => {
  it("is read live and named as the blocker, at the first scrape and from the kept listing", () => {
    const root = host({ driver: "nouveau", booted: true });
    // A plan that names only the GPU: its audio function (group 42, on nouveau) is not planned.
    const file = path.join(root, EXPORTER_OWNED.plan);
    const plan = JSON.parse(fs.readFileSync(file, "utf8"));
    plan.functions = plan.functions.filter((f: { a: string }) => f.a === GPU);
    fs.writeFileSync(file, JSON.stringify(plan));
    const exporter = new Exporter(root);
    for (const text of [exporter.scrape(), exporter.scrape()]) {
      expect(samples(text, "pci_passthrough_function_on_planned_driver")).toHaveLength(1);
      expect(samples(text, "pci_passthrough_iommu_group_blocker_info")).toEqual([
        `pci_passthrough_iommu_group_blocker_info{iommu_group="42",address="${GPU}",driver="nouveau"} 1`,
        `pci_passthrough_iommu_group_blocker_info{iommu_group="42",address="${AUDIO}",driver="nouveau"} 1`,
      ]);
    }
  });
});

describe("over HTTP", () => {
  it("sends /metrics in chunks as it renders them: the same text as a whole scrape", async () => {
    // 300 functions: ~140 KB of exposition, several chunks.
    const spec = syntheticHost(300);
    const built = makeTempHost({
      ...spec,
      pci: spec.pci!.map((p) => (p.physfn ? { ...p, driver: "vfio-pci" } : p)),
    });
    cleanups.push(built.cleanup);
    const { plan } = planOnTree(built.root, { devices: "15b3:1018" });
    const file = path.join(built.root, EXPORTER_OWNED.plan);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `${JSON.stringify(summarisePlan(plan))}\n`);
    const exporter = new Exporter(built.root);
    const whole = exporter.scrape();
    expect(whole.length).toBeGreaterThan(3 * CHUNK_BYTES);
    const server = exporter.server();
    const port = await freePort();
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    try {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
      const sent = await res.text();
      const same = (t: string) =>
        t
          .replace(/^(pci_passthrough_exporter_scrape_duration_seconds) .*$/m, "$1 D")
          .replace(/^(pci_passthrough_exporter_scrapes_total) .*$/m, "$1 N");
      expect(same(sent)).toBe(same(whole));
      expect(samples(sent, "pci_passthrough_exporter_scrapes_total")).toEqual([
        "pci_passthrough_exporter_scrapes_total 2",
      ]);
      expect(promtoolLint(sent)).toEqual({ status: 0, output: "" });
      // HEAD: a scrape's headers, without reading the host (the next GET is scrape 3).
      const head = await fetch(`http://127.0.0.1:${port}/metrics`, { method: "HEAD" });
      expect(head.status).toBe(200);
      expect(head.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
      const again = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(samples(again, "pci_passthrough_exporter_scrapes_total")).toEqual([
        "pci_passthrough_exporter_scrapes_total 3",
      ]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
