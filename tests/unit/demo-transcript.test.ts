// docs/demo-transcript.txt is one run of the README's demo (scripts/demo-transcript.sh writes it).
// It cannot be rerun here (7 minutes of QEMU), so its facts are checked against the code that
// would print them today: the same phases as scripts/demo.sh and scripts/demo.ts, in order; the
// devices, addresses and words of the demo's topology; the status words of the vocabulary; the
// management NIC's address in the refusal. A change to the demo's story or to what the charm says
// there fails this test until the transcript is regenerated.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { deriveAlias } from "../../src/pci-vocabulary";
import { device, FULL } from "../vm/lib/topologies";

const repo = path.resolve(import.meta.dirname, "../..");
const read = (file: string) => readFileSync(path.join(repo, file), "utf8");
const transcript = read("docs/demo-transcript.txt");

/** The phase headings a script prints, as patterns (`${…}` in a template stands for anything). */
function phaseTitles(code: string, call: RegExp): RegExp[] {
  const titles: RegExp[] = [];
  for (const match of code.matchAll(call)) {
    const raw = match[1]!;
    const pattern = raw
      .split(/\$\{[^}]*\}/)
      .map((part) => part.replace(/[.*+?^$()|[\]\\{}]/g, "\\$&"))
      .join(".+");
    titles.push(new RegExp(`^${pattern}$`));
  }
  return titles;
}

/** The transcript's phase headings, `[mm:ss] ` taken off (hooks are indented, not headings). */
const headings = transcript
  .split("\n")
  .filter((l) => /^\[\d\d:\d\d\] /.test(l))
  .map((l) => l.slice(8));

describe("docs/demo-transcript.txt", () => {
  it("shows every phase scripts/demo.sh and scripts/demo.ts print, and no other", () => {
    const expected = [
      ...phaseTitles(read("scripts/demo.sh"), /^phase "([^"]+)"$/gm),
      ...phaseTitles(read("scripts/demo.ts"), /\bphase\(\s*[`"]([^`"]+)[`"],?\s*\)/g),
    ];
    expect(expected.length).toBeGreaterThan(10);
    const missing = expected.filter((title) => !headings.some((h) => title.test(h)));
    const unknown = headings.filter((h) => !expected.some((title) => title.test(h)));
    expect(
      { missing: missing.map((t) => t.source), unknown },
      "regenerate it: bash scripts/demo-transcript.sh",
    ).toEqual({
      missing: [],
      unknown: [],
    });
  });

  it("says what the charm says today: the selected twin, its class word, the kept twin", () => {
    const selected = device(FULL, "twinA");
    const twin = device(FULL, "twinB");
    const alias = deriveAlias({ classCode: "020000" });
    expect(transcript).toContain(
      `Done: ${selected.address} went to vfio-pci during boot; its identical twin ${twin.address} kept e1000e; the unit is active: 1 device (${alias} x1) on vfio-pci; IOMMU on (dmar0)`,
    );
  });

  it("refuses the management NIC naming its own address (each address with its interface)", () => {
    const uplink = device(FULL, "uplink").address;
    const refusal = transcript.split("\n").find((l) => l.includes("rebind refused:")) ?? "";
    expect(refusal).toContain(`${uplink}: network interface`);
    expect(refusal).toMatch(/has addresses 192\.0\.2\.10\b/);
  });

  it("boots the second time with the charm's parameters, and nova-compute gets the twin's spec", () => {
    const selected = device(FULL, "twinA");
    expect(transcript).toMatch(/booted in \d+ s; \/proc\/cmdline: .*intel_iommu=on iommu=pt/);
    const [vendor, product] = selected.ids.split(":");
    // device_spec, or passthrough_whitelist where no nova is installed to say its release (the
    // demo's guest has none): the name every release reads.
    expect(transcript).toContain(
      ` = {"vendor_id":"${vendor}","product_id":"${product}","address":"${selected.address}"}`,
    );
    expect(transcript).toMatch(
      new RegExp(`^ +(device_spec|passthrough_whitelist) = \\{"vendor_id":"${vendor}"`, "m"),
    );
    expect(transcript).toContain("juju config nova-cloud-controller");
  });

  it("explains the test bed's no_timer_check where it first appears", () => {
    const first = transcript.indexOf("no_timer_check");
    expect(first).toBeGreaterThan(0);
    const line = transcript.slice(first).split("\n").slice(0, 2).join("\n");
    expect(line).toMatch(/test bed's/);
  });
});
