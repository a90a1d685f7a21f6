// The packed charm, run as Juju runs it, on a fake host tree shaped like real sysfs.
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { OWNED, SHARED } from "../../src/host/root";
import {
  type CharmUnderTest,
  expectBlockedChangingNothing,
  usePackedCharmHost,
} from "../support/charm-process";
import { diffTrees, snapshotTree } from "../support/tree";

const ONE_GPU = { devices: "0000:83:00.0" };

describe("packed charm under the unit simulator (no node on PATH)", () => {
  const host = usePackedCharmHost();
  let unit: CharmUnderTest;

  it("install then config-changed prepare the host with the bundled runtime", () => {
    unit = host.deploy({ config: ONE_GPU });
    const install = unit.dispatch("install");
    expect(install.stderr).toBe("");
    expect(install.exitCode).toBe(0);
    const grub = fs.readFileSync(path.join(host.root, OWNED.grubDropIn), "utf8");
    expect(grub).toContain("intel_iommu=on iommu=pt");
    const rule = fs.readFileSync(path.join(host.root, OWNED.udevRule), "utf8");
    expect(rule).toContain('KERNEL=="0000:83:00.0"');
    expect(rule).toContain('KERNEL=="0000:83:00.1"'); // the HDMI audio follows its GPU
    expect(rule).not.toContain("0000:84:00.0"); // the identical twin stays on the host
    expect(unit.commands()).toEqual(["update-initramfs -u -k all", "update-grub"]);
    expect(fs.existsSync(path.join(host.root, SHARED.rebootRequired))).toBe(true);
    const state = unit.sim.readState();
    expect(state.unitStatus.status).toBe("blocked");
    expect(state.unitStatus.message).toMatch(
      /^reboot required: kernel command line lacks intel_iommu=on iommu=pt/,
    );

    unit.clearCommands();
    const before = snapshotTree(host.root);
    const callsBefore = unit.sim.readState().calls.length;
    const again = unit.dispatch("config-changed");
    expect(again.exitCode).toBe(0);
    expect(diffTrees(before, snapshotTree(host.root))).toEqual([]);
    expect(unit.commands()).toEqual([]);
    const calls = unit.sim
      .readState()
      .calls.slice(callsBefore)
      .map((c) => c.argv[0]);
    expect(calls.length).toBeLessThanOrEqual(3);
  });

  it("a real config change regenerates only what it feeds", () => {
    unit = host.deploy({ config: ONE_GPU });
    expect(unit.dispatch("install").exitCode).toBe(0);
    unit.clearCommands();
    unit.sim.updateState((s) => {
      s.config["extra-kernel-params"] = "pcie_aspm=off";
    });
    expect(unit.dispatch("config-changed").exitCode).toBe(0);
    expect(unit.commands()).toEqual(["update-grub"]);
    expect(fs.readFileSync(path.join(host.root, OWNED.grubDropIn), "utf8")).toContain(
      "pcie_aspm=off",
    );
  });

  it("bad config blocks naming the option and changes nothing", () => {
    unit = host.deploy({ config: { devices: "10de:zzzz" } });
    const message = expectBlockedChangingNothing(unit, "config-changed");
    expect(message).toMatch(/^devices=/);
    expect(message).toContain("zzzz");
  });

  it("stop and remove leave the host as it was found", () => {
    const pristine = snapshotTree(host.root);
    unit = host.deploy({ config: ONE_GPU });
    expect(unit.dispatch("install").exitCode).toBe(0);
    unit.clearCommands();
    expect(unit.dispatch("stop").exitCode).toBe(0);
    expect(unit.dispatch("remove").exitCode).toBe(0);
    expect(unit.commands()).toEqual(["update-initramfs -u -k all", "update-grub"]);
    const after = snapshotTree(host.root);
    const changes = diffTrees(pristine, after).filter((l) => {
      const rel = l.slice(2);
      // Directories created for our files and the reboot-required flag are all that may remain.
      return (
        !rel.startsWith("var/run") &&
        !(l.startsWith("+ ") && fs.statSync(path.join(host.root, rel)).isDirectory())
      );
    });
    expect(changes).toEqual([]);
  });

  it("an unknown event is ignored as ops ignores it: logged, nothing touched, exit 0 (issue 13 item 6)", () => {
    unit = host.deploy({ config: ONE_GPU });
    const before = snapshotTree(host.root);
    const r = unit.dispatch("frobnicate-the-host");
    expect(r.exitCode).toBe(0);
    const logs = unit.sim.readState().logs.filter((l) => l.level === "WARNING");
    expect(logs.map((l) => l.message).join("\n")).toMatch(/frobnicate-the-host ignored/);
    expect(diffTrees(before, snapshotTree(host.root))).toEqual([]);
    expect(unit.commands()).toEqual([]);
  });

  it("dispatch refuses clearly when no runtime is usable", () => {
    unit = host.deploy({ config: ONE_GPU });
    // Unlink first: the unpacked charm's files are hard links shared with other tests.
    fs.rmSync(path.join(unit.charmDir, "runtime", "arch"));
    fs.writeFileSync(path.join(unit.charmDir, "runtime", "arch"), "sparc64\n");
    const r = unit.dispatch("install");
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("no usable Node.js runtime");
    const logs = unit.sim.readState().logs.filter((l) => l.level === "ERROR");
    expect(logs[0]?.message).toContain("no usable Node.js runtime");
  });

  it("a charm of the other architecture names both and the charm to deploy, not a rebuild", () => {
    unit = host.deploy({ config: ONE_GPU });
    const [here, other] = process.arch === "arm64" ? ["arm64", "amd64"] : ["amd64", "arm64"];
    const otherUname = other === "arm64" ? "aarch64" : "x86_64";
    fs.rmSync(path.join(unit.charmDir, "runtime", "arch"));
    fs.writeFileSync(path.join(unit.charmDir, "runtime", "arch"), `${otherUname}\n`);
    const r = unit.dispatch("install");
    expect(r.exitCode).toBe(1);
    const message = unit.sim.readState().logs.find((l) => l.level === "ERROR")?.message ?? "";
    expect(message).toContain(`this is the ${other} charm (its runtime is for ${otherUname})`);
    expect(message).toContain(`deploy pci-passthrough_${here}.charm instead`);
    expect(message).not.toMatch(/rebuild/i);
  });

  /** Wraps every hook tool so it logs who started it: the charm's node (its cmdline names
   * dist/charm.js) or dispatch's sh. The tools stay the simulator's own, so the hook sees the same
   * Juju. Returns the callers logged so far, `<by> <tool>` each. */
  function logToolCallers(): () => string[] {
    const calls = path.join(unit.charmDir, "..", "tool-callers.log");
    for (const name of fs.readdirSync(unit.sim.binDir)) {
      const tool = path.join(unit.sim.binDir, name);
      fs.renameSync(tool, `${tool}.real`);
      fs.writeFileSync(
        tool,
        [
          "#!/bin/sh",
          'case "$(cat /proc/"$PPID"/cmdline)" in *dist/charm.js* | *dist/actions.js*) by=charm ;; *) by=dispatch ;; esac',
          `echo "$by ${name}" >>'${calls}'`,
          `exec '${tool}.real' "$@"`,
          "",
        ].join("\n"),
        { mode: 0o755 },
      );
    }
    return () => (fs.existsSync(calls) ? fs.readFileSync(calls, "utf8").trim().split("\n") : []);
  }

  it("a quiet hook: dispatch reads config and state in sh; the charm starts no process at all", () => {
    unit = host.deploy({ config: ONE_GPU });
    expect(unit.dispatch("install").exitCode).toBe(0);
    expect(unit.dispatch("config-changed").exitCode).toBe(0);
    const callers = logToolCallers();
    const before = snapshotTree(host.root);
    for (const event of ["config-changed", "update-status"]) {
      const r = unit.dispatch(event);
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
    }
    expect(callers()).toEqual([
      "dispatch config-get",
      "dispatch state-get",
      "dispatch config-get",
      "dispatch state-get",
    ]);
    expect(diffTrees(before, snapshotTree(host.root))).toEqual([]);
    expect(unit.commands()).toEqual(["update-initramfs -u -k all", "update-grub"]);
  });

  it("an action: dispatch reads its parameters too; the charm only reports", () => {
    unit = host.deploy({ config: ONE_GPU });
    expect(unit.dispatch("install").exitCode).toBe(0);
    const callers = logToolCallers();
    const r = unit.dispatch({ name: "list-devices-action", params: { class: "gpu" } });
    expect(r.exitCode).toBe(0);
    expect(unit.sim.readState().lastAction?.failed).toBe(false);
    expect(callers()).toEqual([
      "dispatch config-get",
      "dispatch state-get",
      "dispatch action-get",
      "charm action-set",
    ]);
  });
});
