// pci.ids names: vendors, devices under their vendor, classes as lspci names them.
import { describe, expect, it } from "vitest";
import { loadPciIds, parsePciIds } from "../../src/host/pci-ids";
import { useCleanups } from "../support/cleanups";
import { makeTempHost } from "../support/hosts/build-host";
import { requireFile } from "../support/tools";

// An excerpt in the file's real layout (tabs, two spaces before the name, subsystems, classes).
const EXCERPT = [
  "#\tList of PCI ID's",
  "#",
  "10de  NVIDIA Corporation",
  "\t10f1  GP106 High Definition Audio Controller",
  "\t1bb0  GP104GL [Quadro P5000]",
  "\t\t10de 11a3  GP104GL [Quadro P5000]",
  "1a03  ASPEED Technology, Inc.",
  "\t2000  ASPEED Graphics Family",
  "1bb0  SimpliVity Corporation",
  "\t0002  OmniCube Accelerator OA-3000",
  "8086  Intel Corporation",
  "\t1593  Ethernet Controller E810-C for SFP",
  "",
  "# List of known device classes, subclasses and programming interfaces",
  "C 03  Display controller",
  "\t00  VGA compatible controller",
  "\t\t00  VGA controller",
  "\t80  Display controller",
  "C 04  Multimedia controller",
  "\t03  Audio device",
  "C 06  Bridge",
  "\t04  PCI bridge",
  "\t\t00  Normal decode",
  "\t\t01  Subtractive decode",
  "C 0c  Serial bus controller",
  "\t03  USB controller",
  "\t\t30  XHCI",
  "",
].join("\n");

const cleanups = useCleanups();

describe("parsePciIds", () => {
  const names = parsePciIds(EXCERPT, "/usr/share/misc/pci.ids");

  it("finds a block at the very start, one at the end without a newline, across comments", () => {
    const edges = parsePciIds(
      [
        "1af4  Red Hat, Inc.",
        "# a comment inside the block",
        "\t1041  Virtio network device",
        "C 02  Network controller",
        "\t00  Ethernet controller",
        "\t\t01  made up prog-if",
      ].join("\n"),
      null,
    );
    expect(edges.vendorName("1af4")).toBe("Red Hat, Inc.");
    expect(edges.deviceName("1AF4", "1041")).toBe("Virtio network device");
    // The prog-if says how the device is programmed, not what it is: lspci shows the subclass.
    expect(edges.className("020001")).toBe("Ethernet controller");
    expect(edges.className("0200ff")).toBe("Ethernet controller");
    expect(edges.className("0280ff")).toBe("Network controller");
    // A class line is not a vendor, a device line is not a class.
    expect(edges.vendorName("C 02")).toBeNull();
    expect(edges.className("104100")).toBeNull();
  });

  it("names vendors and their devices, whatever the case of the ids", () => {
    expect(names.vendorName("10de")).toBe("NVIDIA Corporation");
    expect(names.deviceName("10de", "1bb0")).toBe("GP104GL [Quadro P5000]");
    expect(names.deviceName("10DE", "10F1")).toBe("GP106 High Definition Audio Controller");
    expect(names.deviceName("8086", "1593")).toBe("Ethernet Controller E810-C for SFP");
  });

  it("does not confuse a device id with a vendor of the same number", () => {
    expect(names.vendorName("1bb0")).toBe("SimpliVity Corporation");
    expect(names.deviceName("1bb0", "0002")).toBe("OmniCube Accelerator OA-3000");
    expect(names.deviceName("1a03", "1bb0")).toBeNull();
  });

  it("names the class as lspci does (the subclass), never the programming interface", () => {
    expect(names.className("030000")).toBe("VGA compatible controller");
    expect(names.className("038000")).toBe("Display controller");
    expect(names.className("040300")).toBe("Audio device");
    expect(names.className("040380")).toBe("Audio device");
    expect(names.className("060400")).toBe("PCI bridge");
    expect(names.className("060401")).toBe("PCI bridge");
    expect(names.className("0c0330")).toBe("USB controller");
    expect(names.className("0c0500")).toBe("Serial bus controller");
    expect(names.className("0d0000")).toBeNull();
  });

  it("answers null for unknown ids", () => {
    expect(names.vendorName("abcd")).toBeNull();
    expect(names.deviceName("10de", "ffff")).toBeNull();
  });
});

describe("loadPciIds", () => {
  it("reads the host's pci.ids under the root", () => {
    const built = makeTempHost({ pciIds: EXCERPT });
    cleanups.push(built.cleanup);
    const names = loadPciIds(built.root);
    expect(names.source).toBe("/usr/share/misc/pci.ids");
    expect(names.deviceName("1a03", "2000")).toBe("ASPEED Graphics Family");
  });

  it("falls back to hwdata's copy", () => {
    const built = makeTempHost({ files: { "/usr/share/hwdata/pci.ids": EXCERPT } });
    cleanups.push(built.cleanup);
    expect(loadPciIds(built.root).source).toBe("/usr/share/hwdata/pci.ids");
  });

  it("answers null everywhere when the host has no pci.ids", () => {
    const built = makeTempHost({});
    cleanups.push(built.cleanup);
    const names = loadPciIds(built.root);
    expect(names.source).toBeNull();
    expect([
      names.vendorName("10de"),
      names.deviceName("10de", "1bb0"),
      names.className("030000"),
    ]).toEqual([null, null, null]);
  });

  it("parses this machine's full pci.ids", () => {
    requireFile("/usr/share/misc/pci.ids", "pci.ids");
    const names = loadPciIds("/");
    expect(names.vendorName("8086")).toBe("Intel Corporation");
    expect(names.deviceName("10de", "1bb0")).toBe("GP104GL [Quadro P5000]");
    expect(names.className("010802")).toBe("Non-Volatile memory controller");
    expect(names.className("060400")).toBe("PCI bridge");
    expect(names.className("0c0330")).toBe("USB controller");
  });
});
