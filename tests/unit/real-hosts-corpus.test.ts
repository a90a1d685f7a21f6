// The real-host corpus itself: every manifest's recording is there (fetched by setup), unpacks,
// and gets only the additions its manifest states. The charm runs on these hosts in
// tests/integration/real-hosts.test.ts.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { readPciFunctions } from "../../src/host/pci";
import { realHostManifests, unpackRealHost, writeSysScript } from "../support/real-hosts/corpus";

const manifests = realHostManifests();

describe("real-host corpus", () => {
  it("holds at least four distinct machines, one a server with SR-IOV-capable NICs", () => {
    expect(new Set(manifests.map((m) => m.id)).size).toBeGreaterThanOrEqual(4);
    expect(manifests.filter((m) => /SR-IOV/.test(m.kind)).length).toBeGreaterThanOrEqual(1);
  });

  it.each(manifests.map((m) => [m.id, m] as const))(
    "%s unpacks with the additions its manifest states",
    (_id, m) => {
      const host = unpackRealHost(m);
      try {
        const at = (p: string) => path.join(host.root, p);
        expect(fs.readFileSync(at("/proc/sys/kernel/osrelease"), "utf8").trim()).toBe(
          host.kernelRelease,
        );
        expect(fs.existsSync(at(`/lib/modules/${host.kernelRelease}/modules.alias`))).toBe(true);
        expect(fs.existsSync(at("/proc/cmdline"))).toBe(true);
        const { functions } = readPciFunctions(host.root);
        for (const address of Object.keys(m.uses)) {
          expect(fs.existsSync(at(`/sys/bus/pci/devices/${address}`)), address).toBe(true);
        }
        if (/SR-IOV/.test(m.kind)) {
          expect(functions.some((f) => f.sriov !== null && f.sriov.totalVfs > 0)).toBe(true);
        }
      } finally {
        host.cleanup();
      }
    },
  );
});

describe("real-host loader", () => {
  const supermicro = manifests.find((m) => m.id === "supermicro-sys-4029gp-sx-aurora")!;

  it("refuses to add what the recording already has", () => {
    expect(() =>
      unpackRealHost({ ...supermicro, added: { ...supermicro.added, cmdline: "ro" } }),
    ).toThrow(/\/proc\/cmdline is recorded/);
  });

  it("adds driver directories only for the recorded links that dangle, all of them", () => {
    const more = { ...supermicro, added: { ...supermicro.added, driverDirs: ["i40e", "nvme"] } };
    expect(() => unpackRealHost(more)).toThrow(
      /name missing drivers \[i40e, mlx5_core, pcieport, ve_drv\]/,
    );
  });

  it("reads a sys-script as data: the three calls, Python escapes, nothing outside the root", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sys-script-"));
    try {
      const script = [
        "import os",
        "d('sys', 0o755)",
        "d('sys/bus', 0o755)",
        "f('sys/bus/a', 0o644, b'0x8086\\n')",
        "f('sys/bus/b', 0o644, b\"it's \\x41\\t\\\\\")",
        "f('sys/bus/c', 0o644, b'''two",
        "lines\\n''')",
        "l('sys/bus/link', '../bus/a')",
        "",
      ].join("\n");
      writeSysScript(script, dir);
      const at = (p: string) => path.join(dir, p);
      const fresh = () => fs.mkdtempSync(path.join(dir, "again-"));
      expect(fs.readFileSync(at("sys/bus/a"), "latin1")).toBe("0x8086\n");
      expect(fs.readFileSync(at("sys/bus/b"), "latin1")).toBe("it's A\t\\");
      expect(fs.readFileSync(at("sys/bus/c"), "latin1")).toBe("two\nlines\n");
      expect(fs.readlinkSync(at("sys/bus/link"))).toBe("../bus/a");
      expect(() => writeSysScript("x\nd('sys', 0o755)\nd('../escape', 0o755)\n", fresh())).toThrow(
        /leaves the root/,
      );
      expect(() => writeSysScript("x\nd('sys', 0o755)\nos.system('true')\n", fresh())).toThrow(
        /unexpected text/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
