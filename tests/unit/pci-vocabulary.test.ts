// The one PCI vocabulary: addresses (with the five-digit domains of Intel VMD), ids, classes, and
// the grammar the `devices` option and the rebind action's `devices` param share.
import { describe, expect, it } from "vitest";
import { parseRebindParams } from "../../src/actions/rebind-plan";
import { parseConfig } from "../../src/config";
import {
  addressNumber,
  addressOfNumber,
  compareAddresses,
  idPairProblem,
  isPciAddress,
  parseAddressPattern,
  parseIdPair,
  parsePciId,
  parseUevent,
} from "../../src/pci-vocabulary";
import { novaEntryProblems } from "../../src/plan/nova";
import { bound } from "../support/bound-devices";

describe("addresses", () => {
  it("reads the domains Linux prints with %04x, four digits or more", () => {
    expect(isPciAddress("0000:83:00.0")).toBe(true);
    expect(isPciAddress("10000:00:04.0")).toBe(true); // Intel VMD
    expect(isPciAddress("00000:00:04.0")).toBe(false); // %04x never pads past four
    expect(isPciAddress("0000:83:20.0")).toBe(false); // device numbers stop at 1f
    expect(isPciAddress("0000:83:00.8")).toBe(false);
    expect(isPciAddress("83:00.0")).toBe(false);
  });

  it("orders by domain as a number, not as text", () => {
    const sorted = ["10000:00:04.0", "ffff:00:00.0", "0000:84:00.0", "0000:83:00.1"].sort(
      compareAddresses,
    );
    expect(sorted).toEqual(["0000:83:00.1", "0000:84:00.0", "ffff:00:00.0", "10000:00:04.0"]);
  });

  it("numbers a five-digit domain and back", () => {
    const n = addressNumber("10000:01:00.3");
    expect(n).not.toBeNull();
    expect(addressOfNumber(n!)).toBe("10000:01:00.3");
    expect(addressNumber("10000:01:00.3")! > addressNumber("ffff:ff:1f.7")!).toBe(true);
  });

  it("parses a VMD address as the option and the action write it", () => {
    const a = parseAddressPattern("10000:01:00.0");
    if (typeof a === "string") throw new Error(a);
    expect(a.text).toBe("10000:01:00.0");
    expect(a.pattern.test("10000:01:00.0")).toBe(true);
    expect(a.pattern.test("0000:01:00.0")).toBe(false);
  });
});

describe("ids", () => {
  it("takes lspci's and the 0x spelling alike", () => {
    expect(parseIdPair("10de:1bb0")).toEqual({ vendorId: "10de", deviceId: "1bb0" });
    expect(parseIdPair("0x10DE:0x1BB0")).toEqual({ vendorId: "10de", deviceId: "1bb0" });
    expect(parseIdPair("10de:1bb")).toBeNull();
    expect(parsePciId("0x8086")).toBe("8086");
    expect(parsePciId("808")).toBeNull();
  });

  it("says which id of a typo is wrong, and leaves addresses alone", () => {
    expect(idPairProblem("10de:zzzz")?.problem).toBe('product id "zzzz" is not 4 hex digits');
    expect(idPairProblem("10de")?.problem).toMatch(/lone id/);
    expect(idPairProblem("0000:83:00.0")).toBeNull();
  });
});

describe("one grammar for the devices option and the rebind action", () => {
  const configTakes = (token: string) => parseConfig({ devices: token }).ok;
  const rebindTakes = (token: string) => parseRebindParams({ devices: token }).ok;

  it.each([
    "10de:1bb0",
    "0x10de:0x1bb0",
    "0X10DE:0X1BB0",
    "0000:83:00.0",
    "83:00.0",
    "10000:01:00.0",
  ])("both take %s", (token) => {
    expect(configTakes(token)).toBe(true);
    expect(rebindTakes(token)).toBe(true);
  });

  it.each(["10de:1bb", "0000:83:20.0", "0000:83:00.0;0000:84:00.0", "10de"])(
    "both refuse %s",
    (token) => {
      expect(configTakes(token)).toBe(false);
      expect(rebindTakes(token)).toBe(false);
    },
  );

  it("rebind reads ids and a VMD address as the option does", () => {
    const r = parseRebindParams({ devices: "0x10DE:0x1BB0 10000:01:00.0" });
    expect(r.ok && r.params.devices).toEqual([
      { kind: "ids", vendorId: "10de", deviceId: "1bb0", source: "0x10DE:0x1BB0" },
      { kind: "address", address: "10000:01:00.0", source: "10000:01:00.0" },
    ]);
  });

  it("rebind alone refuses globs, and says why", () => {
    expect(configTakes("0000:83:00.*")).toBe(true);
    const r = parseRebindParams({ devices: "0000:83:00.*" });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.errors[0]?.message).toMatch(/exact addresses, not the globs/);
  });
});

describe("nova and the VMD domains", () => {
  it("is not offered a function in a domain beyond ffff, and says why", () => {
    const problems = novaEntryProblems([bound("10000:01:00.0", "8086:0a54", "nvme")]);
    expect(problems.map((p) => p.message)).toEqual([
      expect.stringContaining("beyond the ffff that nova takes"),
    ]);
  });
});

describe("a function's uevent", () => {
  // Verbatim from a recording of a real host (systemd's test/sys-script.py, a ThinkPad T60p): a
  // driver name with a space, a class printed without its leading zero.
  const t60p = [
    "DRIVER=HDA Intel",
    "PCI_CLASS=40300",
    "PCI_ID=8086:27D8",
    "PCI_SUBSYS_ID=17AA:2010",
    "PCI_SLOT_NAME=0000:00:1b.0",
    "MODALIAS=pci:v00008086d000027D8sv000017AAsd00002010bc04sc03i00",
    "",
  ].join("\n");

  it("gives the ids, class, driver and modalias the separate attributes give", () => {
    expect(parseUevent(t60p)).toEqual({
      driver: "HDA Intel",
      vendorId: "8086",
      deviceId: "27d8",
      subsystemVendorId: "17aa",
      subsystemDeviceId: "2010",
      classCode: "040300",
      modalias: "pci:v00008086d000027D8sv000017AAsd00002010bc04sc03i00",
    });
  });

  it("reads no DRIVER line as unbound", () => {
    expect(parseUevent(t60p.replace("DRIVER=HDA Intel\n", ""))?.driver).toBeNull();
  });

  it("is null when the ids or the class are not the kernel's, so the attributes are read", () => {
    expect(parseUevent(t60p.replace("PCI_ID=8086:27D8", "PCI_ID=garbage"))).toBeNull();
    expect(parseUevent(t60p.replace("PCI_CLASS=40300\n", ""))).toBeNull();
    expect(parseUevent("")).toBeNull();
  });
});
