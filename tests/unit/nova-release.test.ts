// The installed nova, read from a dpkg status file under a temp root (the real file shape: stanzas
// separated by blank lines, continuation lines starting with a space).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  compareUpstream,
  findInstalledVersion,
  novaReleaseFromStatus,
  readNovaRelease,
  upstreamVersion,
} from "../../src/host/nova-release";

function stanza(pkg: string, version: string, status = "install ok installed"): string {
  return [
    `Package: ${pkg}`,
    `Status: ${status}`,
    "Priority: optional",
    "Section: net",
    "Architecture: all",
    `Version: ${version}`,
    `Description: ${pkg} for the test`,
    " A continuation line that mentions Package: nova-common and Version: 1:99.0.0 in passing.",
    "",
  ].join("\n");
}

function statusFile(...stanzas: string[]): string {
  return stanzas.join("\n");
}

describe("upstreamVersion", () => {
  it.each([
    ["3:29.0.1-0ubuntu1", [29, 0, 1]],
    ["2:25.2.0-0ubuntu1~cloud0", [25, 2, 0]],
    ["3:26.0.0~rc1-0ubuntu1", [26, 0, 0]],
    ["26.1.0", [26, 1, 0]],
    ["3:31.0.0-0ubuntu1.1~cloud0", [31, 0, 0]],
    ["1:2:27.0.0-1", [2, 0, 0]],
    ["3:30-1", [30, 0, 0]],
    ["3:28.0.0+git2023-0ubuntu1", [28, 0, 0]],
  ])("%s → %j", (version, expected) => {
    expect(upstreamVersion(version)).toEqual(expected);
  });

  it("is null when the upstream part is not a number", () => {
    expect(upstreamVersion("3:git-abc-1")).toBeNull();
    expect(upstreamVersion("")).toBeNull();
  });

  it("compares numerically, not as text", () => {
    expect(compareUpstream([25, 2, 0], [26, 0, 0])).toBeLessThan(0);
    expect(compareUpstream([9, 9, 9], [26, 0, 0])).toBeLessThan(0);
    expect(compareUpstream([100, 0, 0], [26, 0, 0])).toBeGreaterThan(0);
    expect(compareUpstream([26, 0, 0], [26, 0, 0])).toBe(0);
    expect(compareUpstream([26, 0, 10], [26, 0, 9])).toBeGreaterThan(0);
  });
});

describe("findInstalledVersion", () => {
  it("finds the package's own stanza, not a mention in another's description", () => {
    const text = statusFile(
      stanza("nova-api", "3:29.0.1-0ubuntu1"),
      stanza("nova-common", "3:29.0.1-0ubuntu1"),
      stanza("zlib1g", "1:1.3.dfsg-3.1ubuntu2"),
    );
    expect(findInstalledVersion(text, "nova-common")).toBe("3:29.0.1-0ubuntu1");
    expect(findInstalledVersion(text, "nova")).toBeNull();
    expect(findInstalledVersion(text, "python3-nova")).toBeNull();
  });

  it("does not take a prefix of a longer package name", () => {
    const text = statusFile(stanza("nova-common-extra", "9:1.0-1"));
    expect(findInstalledVersion(text, "nova-common")).toBeNull();
  });

  it("ignores a removed package whose config files remain", () => {
    const text = statusFile(
      stanza("nova-common", "2:25.2.0-0ubuntu1", "deinstall ok config-files"),
    );
    expect(findInstalledVersion(text, "nova-common")).toBeNull();
  });

  it("counts a held package and one unpacked mid-upgrade", () => {
    expect(
      findInstalledVersion(stanza("nova-common", "3:27.0.0-1", "hold ok installed"), "nova-common"),
    ).toBe("3:27.0.0-1");
    expect(
      findInstalledVersion(
        stanza("nova-common", "3:28.0.0-1", "install ok unpacked"),
        "nova-common",
      ),
    ).toBe("3:28.0.0-1");
  });

  it("reads the last stanza of a file with no trailing blank line", () => {
    const text = `${stanza("a", "1")}\nPackage: nova-common\nStatus: install ok installed\nVersion: 3:26.0.0-1`;
    expect(findInstalledVersion(text, "nova-common")).toBe("3:26.0.0-1");
  });
});

describe("novaReleaseFromStatus", () => {
  it("prefers nova-common over python3-nova", () => {
    const text = statusFile(
      stanza("python3-nova", "3:29.0.1-0ubuntu1"),
      stanza("nova-common", "3:29.0.2-0ubuntu1"),
    );
    expect(novaReleaseFromStatus(text)).toEqual({
      package: "nova-common",
      version: "3:29.0.2-0ubuntu1",
      upstream: [29, 0, 2],
    });
  });

  it("falls back to python3-nova", () => {
    const text = statusFile(stanza("python3-nova", "2:25.2.0-0ubuntu1"));
    expect(novaReleaseFromStatus(text)?.upstream).toEqual([25, 2, 0]);
  });

  it("reads a status file with CRLF line ends", () => {
    const text = statusFile(stanza("nova-common", "3:26.0.0-1")).replace(/\n/g, "\r\n");
    expect(novaReleaseFromStatus(text)?.version).toBe("3:26.0.0-1");
  });
});

describe("readNovaRelease under a root", () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), "nova-release-"));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const writeStatus = (text: string) => {
    mkdirSync(path.join(root, "var/lib/dpkg"), { recursive: true });
    writeFileSync(path.join(root, "var/lib/dpkg/status"), text);
  };

  it("is null without a status file", () => {
    expect(readNovaRelease(root)).toBeNull();
  });

  it("is null on a host without nova", () => {
    writeStatus(statusFile(stanza("bash", "5.2.21-2ubuntu4")));
    expect(readNovaRelease(root)).toBeNull();
  });

  it("finds nova in a large status file quickly", () => {
    const filler: string[] = [];
    for (let i = 0; i < 6000; i++) filler.push(stanza(`lib-filler-${i}`, `1.${i}-1`));
    writeStatus(
      statusFile(...filler, stanza("nova-common", "3:29.0.1-0ubuntu1"), stanza("zz", "1")),
    );
    const size = readFileSync(path.join(root, "var/lib/dpkg/status")).length;
    expect(size).toBeGreaterThan(1_000_000);
    const t0 = performance.now();
    const release = readNovaRelease(root);
    const ms = performance.now() - t0;
    expect(release).toEqual({
      package: "nova-common",
      version: "3:29.0.1-0ubuntu1",
      upstream: [29, 0, 1],
    });
    expect(ms).toBeLessThan(200);
  });
});
