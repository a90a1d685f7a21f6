// Issue 26, "Must show": Debian's real Prometheus scrapes the exporter of the packed charm and its
// alert rules fire on a host whose planned GPU is not on vfio-pci, and stay silent on a healthy
// one. Two fake host trees, each with the packed charm related over cos-agent (the simulator plays
// Juju): the exporter is started exactly as the unit file the charm wrote says (its ExecStart, the
// charm's own runtime), Prometheus gets the scrape jobs and the rules from the relation data the
// charm published (topology matchers included; the agent's topology labels added to the targets
// as grafana-agent adds them), on 127.0.0.1, with 1 s scrape and evaluation intervals and the
// rules' `for` cut to 2 s. Bounded: each wait gives up after 60 s.
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXPORTER_OWNED } from "../../src/host/root";
import { EXPORTER_NODE_FLAGS } from "../../src/plan/exporter-files";
import { type CharmUnderTest, deployPackedCharm } from "../support/charm-process";
import { freePort } from "../support/free-port";
import { makeTempHost } from "../support/hosts/build-host";
import { seedHost } from "../support/hosts/presets";
import { cosAgentRelation } from "../support/relations";
import { requireTool } from "../support/tools";
import { tempDir } from "../support/tree";

const GPU = "0000:83:00.0";
const AUDIO = "0000:83:00.1";
const BOOTED = "BOOT_IMAGE=/vmlinuz-6.8.0-45-generic root=/dev/sda1 ro intel_iommu=on iommu=pt";
const COS = cosAgentRelation(9);
const LIMIT_MS = 60_000;

const processes: ChildProcess[] = [];
const cleanups: Array<() => void> = [];

/** Runs `argv` until the test ends; resolves once `ready` shows on its stderr. */
function start(argv: string[], env: NodeJS.ProcessEnv, ready: RegExp): Promise<ChildProcess> {
  const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ["ignore", "ignore", "pipe"] });
  processes.push(child);
  let err = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${argv[0]} not ready in time:\n${err}`)),
      LIMIT_MS,
    );
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      if (ready.test(err)) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${argv[0]} exited (${code}):\n${err}`));
    });
  });
}

interface Unit {
  name: string;
  charm: CharmUnderTest;
  port: number;
  config: {
    metrics_alert_rules: { groups: Array<{ name: string; rules: Array<Record<string, unknown>> }> };
    metrics_scrape_jobs: Array<{
      job_name: string;
      metrics_path: string;
      static_configs: Array<{ targets: string[] }>;
    }>;
  };
}

/** A seed host with the GPU and its audio on `driver` (already booted with our parameters), the
 * packed charm on it, related over cos-agent, and its exporter started as its unit file says. */
async function unitOn(name: string, driver: string): Promise<Unit> {
  const spec = seedHost();
  const host = makeTempHost({
    ...spec,
    cmdline: BOOTED,
    pci: spec.pci!.map((p) => (p.address === GPU || p.address === AUDIO ? { ...p, driver } : p)),
  });
  cleanups.push(host.cleanup);
  const port = await freePort();
  const charm = deployPackedCharm(host.root, {
    config: { devices: GPU, "exporter-port": port },
    relations: [COS],
  });
  cleanups.push(charm.cleanup);
  const r = charm.dispatch({
    name: "cos-agent-relation-joined",
    relationId: COS.id,
    remoteUnit: "grafana-agent/0",
  });
  expect(r.exitCode, r.stderr).toBe(0);
  expect(charm.commands()).toEqual([
    "update-initramfs -u -k all",
    "update-grub",
    "systemctl daemon-reload",
    "systemctl enable pci-passthrough-exporter.service",
    "systemctl restart pci-passthrough-exporter.service",
  ]);
  const unitFile = fs.readFileSync(path.join(host.root, EXPORTER_OWNED.unit), "utf8");
  const execStart = /^ExecStart=(.*)$/m.exec(unitFile)?.[1]?.split(" ") ?? [];
  // The charm's own runtime, from the charm directory (no node on the unit's PATH), with the
  // exporter's runtime flags.
  expect(execStart.slice(0, EXPORTER_NODE_FLAGS.length + 2)).toEqual([
    path.join(charm.charmDir, "runtime", "bin", "node"),
    ...EXPORTER_NODE_FLAGS,
    path.join(charm.charmDir, "dist", "exporter.js"),
  ]);
  await start(execStart, { PCI_PASSTHROUGH_ROOT: host.root }, /listening on/);
  const relation = charm.sim.readState().relations.find((x) => x.endpoint === "cos-agent")!;
  return { name, charm, port, config: JSON.parse(relation.localUnitData.config!) };
}

async function api(port: number, query: string): Promise<{ data: unknown }> {
  const res = await fetch(`http://127.0.0.1:${port}${query}`);
  return (await res.json()) as { data: unknown };
}

type Alert = { labels: Record<string, string>; state: string };

let healthy: Unit;
let broken: Unit;
let promPort: number;

beforeAll(async () => {
  requireTool("prometheus", "prometheus");
  healthy = await unitOn("pci-passthrough/0", "vfio-pci");
  broken = await unitOn("pci-passthrough/1", "nouveau");
  const { dir, cleanup } = tempDir("pci-prometheus-");
  cleanups.push(cleanup);
  // The rules exactly as published, with `for` cut from minutes to seconds.
  const rules = healthy.config.metrics_alert_rules;
  for (const group of rules.groups) for (const rule of group.rules) rule.for = "2s";
  fs.writeFileSync(path.join(dir, "rules.json"), JSON.stringify(rules));
  // The jobs as published, each with the labels the agent adds from the Juju topology.
  const topology = rules.groups[0]!.rules[0]!.labels as Record<string, string>;
  const jobs = [healthy, broken].map((u, i) => {
    const job = u.config.metrics_scrape_jobs[0]!;
    return {
      ...job,
      job_name: `${job.job_name}_${i}`,
      static_configs: job.static_configs.map((c) => ({
        ...c,
        labels: {
          juju_model: topology.juju_model,
          juju_model_uuid: topology.juju_model_uuid,
          juju_application: topology.juju_application,
          juju_unit: u.name,
        },
      })),
    };
  });
  fs.writeFileSync(
    path.join(dir, "prometheus.yml"),
    JSON.stringify({
      global: { scrape_interval: "1s", evaluation_interval: "1s" },
      rule_files: [path.join(dir, "rules.json")],
      scrape_configs: jobs,
    }),
  );
  promPort = await freePort();
  await start(
    [
      "prometheus",
      `--config.file=${path.join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${path.join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
    ],
    { PATH: process.env.PATH },
    /Server is ready to receive web requests/,
  );
}, 4 * LIMIT_MS);

afterAll(() => {
  for (const p of processes.splice(0)) p.kill("SIGKILL");
  for (const c of cleanups.splice(0).reverse()) c();
});

/** Polls Prometheus' alerts until `done` says so, or fails after LIMIT_MS with what it saw. */
async function alertsUntil(done: (alerts: Alert[]) => boolean): Promise<Alert[]> {
  const deadline = Date.now() + LIMIT_MS;
  let alerts: Alert[] = [];
  while (Date.now() < deadline) {
    alerts = ((await api(promPort, "/api/v1/alerts")).data as { alerts: Alert[] }).alerts;
    if (done(alerts)) return alerts;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`gave up after ${LIMIT_MS} ms; alerts: ${JSON.stringify(alerts, null, 1)}`);
}

describe("Debian's Prometheus and the packed charm's exporter", () => {
  it(
    "scrapes both exporters",
    async () => {
      const deadline = Date.now() + LIMIT_MS;
      let up: Array<{ metric: Record<string, string>; value: [number, string] }> = [];
      while (Date.now() < deadline) {
        up = ((await api(promPort, "/api/v1/query?query=up")).data as { result: typeof up }).result;
        if (up.length === 2 && up.every((s) => s.value[1] === "1")) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      expect(up.map((s) => [s.metric.juju_unit, s.value[1]]).sort()).toEqual([
        ["pci-passthrough/0", "1"],
        ["pci-passthrough/1", "1"],
      ]);
    },
    2 * LIMIT_MS,
  );

  it(
    "fires on the host whose GPU is on nouveau, and never on the healthy one",
    async () => {
      const firing = await alertsUntil((alerts) =>
        alerts.some(
          (a) =>
            a.state === "firing" &&
            a.labels.alertname === "PciPassthroughFunctionNotOnPlannedDriver" &&
            a.labels.address === GPU,
        ),
      );
      const mine = firing.filter((a) => a.labels.juju_unit === broken.name);
      expect(
        mine
          .filter((a) => a.labels.alertname === "PciPassthroughFunctionNotOnPlannedDriver")
          .map((a) => [a.labels.address, a.labels.driver, a.labels.severity])
          .sort(),
      ).toEqual(expect.arrayContaining([[GPU, "nouveau", "warning"]]));
      // Its group holds the GPU on nouveau: not viable.
      const viability = await alertsUntil((alerts) =>
        alerts.some(
          (a) => a.state === "firing" && a.labels.alertname === "PciPassthroughIommuGroupNotViable",
        ),
      );
      expect(
        viability
          .filter((a) => a.labels.alertname === "PciPassthroughIommuGroupNotViable")
          .map((a) => [a.labels.juju_unit, a.labels.iommu_group]),
      ).toEqual([[broken.name, "42"]]);
      // The healthy host: several evaluations later, no alert at all, pending or firing.
      const all = (await api(promPort, "/api/v1/alerts")).data as { alerts: Alert[] };
      expect(all.alerts.filter((a) => a.labels.juju_unit === healthy.name)).toEqual([]);
      const rules = (await api(promPort, "/api/v1/rules")).data as {
        groups: Array<{ rules: Array<{ health: string; name: string }> }>;
      };
      // Every rule evaluates (no broken expression), all 8 of them.
      const evaluated = rules.groups.flatMap((g) => g.rules);
      expect(evaluated).toHaveLength(8);
      expect(evaluated.filter((r) => r.health !== "ok")).toEqual([]);
    },
    3 * LIMIT_MS,
  );
});
