import { describe, expect, it } from "vitest";
import { deriveAlias } from "../../src/pci-vocabulary";
import {
  mayMatchUnread,
  novaDeviceType,
  selectedByIds,
  selectFunctions,
  selectorMatches,
} from "../../src/plan/select";
import { fn, host, seedHost, sel } from "../support/host-facts";

const addrs = (bind: { address: string }[]) => bind.map((b) => b.address);

describe("selectFunctions", () => {
  it("selects both P5000s by id, with their HDMI audio as companions", () => {
    const s = selectFunctions(
      [sel({ vendorId: "10de", productId: "1bb0", source: "10de:1bb0" })],
      seedHost(),
    );
    expect(s.problems).toEqual([]);
    expect(s.unmatched).toEqual([]);
    expect(addrs(s.bind)).toEqual(["0000:83:00.0", "0000:83:00.1", "0000:84:00.0", "0000:84:00.1"]);
    expect(s.bind[0]).toMatchObject({ alias: "gpu", reason: "selected", follows: null });
    expect(s.bind[1]).toMatchObject({
      alias: "gpu-audio",
      reason: "companion",
      follows: "0000:83:00.0",
      deviceType: "type-PCI",
    });
    expect(s.notes).toEqual([]);
  });

  it("selects one of two identical GPUs by address and leaves the twin", () => {
    const s = selectFunctions(
      [sel({ address: "0000:84:00.0", alias: "p5000", source: "0000:84:00.0" })],
      seedHost(),
    );
    expect(addrs(s.bind)).toEqual(["0000:84:00.0", "0000:84:00.1"]);
    expect(s.bind.map((b) => b.alias)).toEqual(["p5000", "p5000-audio"]);
  });

  it("honours companions: false, and notes the group member left behind", () => {
    const s = selectFunctions(
      [sel({ address: "0000:83:00.0", companions: false, source: "x" })],
      seedHost(),
    );
    expect(addrs(s.bind)).toEqual(["0000:83:00.0"]);
    expect(s.notes.join("\n")).toMatch(/IOMMU group 60 .*0000:83:00\.1/);
  });

  it("takes the whole slot as companions while the IOMMU is not on yet (no groups)", () => {
    const facts = seedHost();
    for (const f of facts.functions) f.iommuGroup = null;
    facts.iommuGroups.clear();
    const s = selectFunctions([sel({ address: "0000:83:00.0", source: "x" })], facts);
    expect(addrs(s.bind)).toEqual(["0000:83:00.0", "0000:83:00.1"]);
  });

  it("follows consumer:pci links and never takes a same-class peer (second NIC port)", () => {
    const facts = host([
      fn("0000:17:00.0", "8086:1593", "020000", { iommuGroup: 5, driver: "ice" }),
      fn("0000:17:00.1", "8086:1593", "020000", { iommuGroup: 5, driver: "ice" }),
      fn("0000:65:00.0", "10de:2204", "030000", {
        iommuGroup: 7,
        consumers: ["0000:65:00.2"],
      }),
      fn("0000:65:00.2", "10de:1ad8", "0c0330", { iommuGroup: 8 }),
    ]);
    const s = selectFunctions(
      [
        sel({ address: "0000:17:00.0", source: "a" }),
        sel({ index: 1, address: "0000:65:00.0", source: "b" }),
      ],
      facts,
    );
    expect(addrs(s.bind)).toEqual(["0000:17:00.0", "0000:65:00.0", "0000:65:00.2"]);
    expect(s.bind[2]!.alias).toBe("gpu-usb");
    expect(s.notes.join("\n")).toMatch(/group 5 .*0000:17:00\.1/);
  });

  // The plan passes over what each selected function shares only for those that share something,
  // and sorts only what is out of bus order (select.ts): both must still hold on hosts where the
  // order is not the facts' and where alone VFs sit among functions that share a group.
  it("binds in bus order whatever order the entries and the facts list them in", () => {
    const facts = seedHost();
    facts.functions.reverse();
    const s = selectFunctions(
      [
        sel({ address: "0000:84:00.0", companions: false, source: "a" }),
        sel({ index: 1, address: "0000:83:00.0", companions: false, source: "b" }),
      ],
      facts,
    );
    expect(addrs(s.bind)).toEqual(["0000:83:00.0", "0000:84:00.0"]);
  });

  it("sorts by bus order when the facts' own order is not it (a five-digit domain)", () => {
    // The test helper lists functions in plain string order: 10000:… before ffff:…, although
    // domain ffff comes first on the bus.
    const facts = host([
      fn("10000:01:00.0", "15b3:1018", "020000", { iommuGroup: 2 }),
      fn("ffff:01:00.0", "15b3:1018", "020000", { iommuGroup: 1 }),
    ]);
    expect(facts.functions.map((f) => f.address)).toEqual(["10000:01:00.0", "ffff:01:00.0"]);
    const s = selectFunctions([sel({ vendorId: "15b3", productId: "1018", source: "x" })], facts);
    expect(addrs(s.bind)).toEqual(["ffff:01:00.0", "10000:01:00.0"]);
  });

  it("still judges the functions that share a group among many that stand alone", () => {
    const vfs = ["0000:3b:00.2", "0000:3b:00.3", "0000:66:00.2", "0000:66:00.3"].map((a, i) =>
      fn(a, "15b3:1018", "020000", { iommuGroup: 20 + i, physfn: `${a.slice(0, -1)}0` }),
    );
    const facts = host([
      ...vfs,
      fn("0000:65:00.0", "10de:2204", "030000", { iommuGroup: 9 }),
      fn("0000:65:00.1", "10de:1aef", "040300", { iommuGroup: 9 }),
      fn("0000:65:00.2", "15b3:1018", "020000", { iommuGroup: 10 }),
      fn("0000:65:00.3", "8086:1533", "020000", { iommuGroup: 10, driver: "igb" }),
      fn("0000:65:00.4", "15b3:1018", "020000", { iommuGroup: 11 }),
      fn("0000:65:00.5", "8086:1533", "020000", { iommuGroup: 11 }),
    ]);
    const usage = new Map([["0000:65:00.3", ["network interface eno1 is up"]]]);
    const s = selectFunctions(
      [
        sel({ vendorId: "15b3", productId: "1018", source: "a" }),
        sel({ index: 1, address: "0000:65:00.0", source: "b" }),
      ],
      facts,
      usage,
    );
    expect(addrs(s.bind)).toEqual([
      "0000:3b:00.2",
      "0000:3b:00.3",
      "0000:65:00.0",
      "0000:65:00.1",
      "0000:65:00.4",
      "0000:66:00.2",
      "0000:66:00.3",
    ]);
    expect(s.bind[3]).toMatchObject({ reason: "companion", follows: "0000:65:00.0" });
    expect(s.withheld.map((w) => w.address)).toEqual(["0000:65:00.2"]);
    expect(s.withheld[0]!.reasons[0]).toMatch(/IOMMU group 10 also holds 0000:65:00\.3/);
    expect(s.notes).toEqual([
      expect.stringMatching(/^IOMMU group 11 also holds 0000:65:00\.5, kept by the host/),
    ]);
  });

  it("refuses a bridge, the boot VGA and an address holding another device", () => {
    const s = selectFunctions(
      [
        sel({ address: "0000:80:02.0", source: "0000:80:02.0" }),
        sel({ index: 1, address: "0000:02:00.0", source: "0000:02:00.0" }),
        sel({
          index: 2,
          vendorId: "8086",
          productId: "1593",
          address: "0000:83:00.0",
          source: '{"address":"0000:83:00.0"}',
        }),
      ],
      seedHost(),
    );
    expect(s.bind).toEqual([]);
    const text = s.problems.map((p) => p.message).join("\n");
    expect(s.problems.every((p) => p.option === "devices")).toBe(true);
    expect(text).toMatch(/entry #1 .*0000:80:02\.0.*bridge/);
    // The boot VGA is no longer a refusal that blocks everything: the host keeps it (it uses it
    // as its console), and `force: true` on its entry would take it (host-safety.ts).
    expect(s.withheld).toEqual([
      expect.objectContaining({
        address: "0000:02:00.0",
        entry: expect.stringMatching(/entry #2/),
      }),
    ]);
    expect(s.withheld[0]!.reasons.join(" ")).toMatch(/boot VGA/);
    expect(text).toMatch(/entry #3 .*0000:83:00\.0 holds 10de:1bb0, not 8086:1593/);
  });

  it("reports two entries giving one function different aliases", () => {
    const s = selectFunctions(
      [
        sel({ vendorId: "10de", productId: "1bb0", alias: "p5000", source: "a" }),
        sel({ index: 1, address: "0000:8?:00.0", alias: "gpu", source: "b" }),
      ],
      seedHost(),
    );
    expect(s.problems).toHaveLength(2);
    expect(s.problems[0]!.message).toMatch(/both select 0000:83:00\.0 .*"p5000" and "gpu"/);
  });

  it("lists selectors that match nothing (a GPU-less host is normal)", () => {
    const facts = host([fn("0000:00:17.0", "8086:a182", "010601")]);
    const one = sel({ vendorId: "10de", productId: "1bb0", source: "10de:1bb0" });
    const s = selectFunctions([one], facts);
    expect(s).toEqual({ bind: [], withheld: [], problems: [], unmatched: [one], notes: [] });
  });

  it("matches address globs inside one component only", () => {
    const gpu = fn("0000:83:00.0", "10de:1bb0", "030000");
    expect(selectorMatches(sel({ address: "0000:8?:00.*", source: "" }), gpu)).toBe(true);
    expect(selectorMatches(sel({ address: "0000:8[0-2]:00.0", source: "" }), gpu)).toBe(false);
    expect(selectorMatches(sel({ address: "0000:*:00.0", source: "" }), gpu)).toBe(true);
    expect(selectorMatches(sel({ address: "0001:83:00.0", source: "" }), gpu)).toBe(false);
  });

  it("confirms a card by ids only through an entry by ids, never one by address alone", () => {
    const gpu = fn("0000:83:00.0", "10de:1bb0", "030000");
    const byAddress = sel({ address: "0000:83:00.0", source: "0000:83:00.0" });
    expect(selectedByIds([byAddress], gpu)).toBe(false);
    expect(
      selectedByIds([byAddress, sel({ vendorId: "10de", productId: "1bb0", source: "" })], gpu),
    ).toBe(true);
    expect(selectedByIds([sel({ vendorId: "10de", productId: "1bb1", source: "" })], gpu)).toBe(
      false,
    );
  });

  it("says an entry may select a function whose ids are unreadable unless its address rules it out", () => {
    expect(
      mayMatchUnread(sel({ vendorId: "10de", productId: "1bb0", source: "" }), "0000:84:00.0"),
    ).toBe(true);
    expect(mayMatchUnread(sel({ address: "0000:83:00.*", source: "" }), "0000:83:00.1")).toBe(true);
    expect(mayMatchUnread(sel({ address: "0000:83:00.*", source: "" }), "0000:84:00.0")).toBe(
      false,
    );
  });
});

describe("deriveAlias / novaDeviceType", () => {
  it.each([
    ["030000", "gpu"],
    ["030200", "gpu"],
    ["038000", "gpu"],
    ["020000", "network"],
    ["020700", "network"],
    ["010802", "nvme"],
    ["010601", "storage"],
    ["040300", "audio"],
    ["120000", "accelerator"],
    ["0c0330", "usb"],
    ["0c8000", "serial-bus"],
    ["ff0000", "other"],
  ])("class %s → %s", (classCode, alias) => {
    expect(deriveAlias({ classCode })).toBe(alias);
  });

  it("types VFs, SR-IOV PFs and plain functions", () => {
    expect(novaDeviceType({ physfn: "0000:17:00.0", sriov: null })).toBe("type-VF");
    expect(novaDeviceType({ physfn: null, sriov: { totalVfs: 64, numVfs: 0 } })).toBe("type-PF");
    expect(novaDeviceType({ physfn: null, sriov: null })).toBe("type-PCI");
  });
});
