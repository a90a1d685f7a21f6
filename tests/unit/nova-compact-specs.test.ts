// Issue 21 item 8: nova's regex addresses that carry many functions in a few specs must be exact:
// each spec's domain × buses × slots × functions holds only the given addresses, and together they
// hold them all. Checked by expanding every regex over all 2^16 bus/slot/function values of a
// domain (Python's re.match anchors at the start only, like JavaScript's ^ without $).
import { describe, expect, it } from "vitest";
import { compactAddresses, hexSetRegex, type NovaAddressRegex } from "../../src/plan/nova";

const hex = (n: number, w: number) => n.toString(16).padStart(w, "0");

/** Every address the specs admit, as nova's PciAddressRegexSpec.match would (start-anchored). */
function expand(specs: NovaAddressRegex[], domains: string[]): Set<string> {
  const out = new Set<string>();
  for (const s of specs) {
    const [d, b, sl, f] = [s.domain, s.bus, s.slot, s.function].map((r) => new RegExp(`^(?:${r})`));
    for (const domain of domains) {
      if (!d!.test(domain)) continue;
      for (let bus = 0; bus < 256; bus++) {
        if (!b!.test(hex(bus, 2))) continue;
        for (let slot = 0; slot < 32; slot++) {
          if (!sl!.test(hex(slot, 2))) continue;
          for (let fn = 0; fn < 8; fn++) {
            if (f!.test(String(fn))) out.add(`${domain}:${hex(bus, 2)}:${hex(slot, 2)}.${fn}`);
          }
        }
      }
    }
  }
  return out;
}

/** A deterministic pseudo-random generator (tests must be repeatable). */
function lcg(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x / 0x7fffffff;
  };
}

describe("compactAddresses", () => {
  it("hexSetRegex: full-width alternatives, runs as classes, 9 and a never joined", () => {
    expect(hexSetRegex([3, 4, 5], 1)).toBe("[3-5]");
    expect(hexSetRegex([7], 1)).toBe("7");
    expect(hexSetRegex([0x10, 0x11, 0x12], 2)).toBe("1[0-2]");
    expect(hexSetRegex([...Array(16).keys()].map((i) => 0x10 + i).concat([0x20]), 2)).toBe(
      "(?:1[0-9a-f]|20)",
    );
    expect(hexSetRegex([0x18, 0x19, 0x1a, 0x28, 0x29, 0x2a], 2)).toBe("[12][89a]");
  });

  it("4,096 consecutive VFs over 17 buses: a handful of specs, exact", () => {
    const addresses: string[] = [];
    for (let rid = (0x10 << 8) + 1; addresses.length < 4096; rid++) {
      addresses.push(`0000:${hex(rid >> 8, 2)}:${hex((rid >> 3) & 31, 2)}.${rid & 7}`);
    }
    const specs = compactAddresses(addresses);
    expect(specs.length).toBeLessThanOrEqual(6);
    expect([...expand(specs, ["0000"])].sort()).toEqual([...addresses].sort());
  });

  it("scattered sets over two domains: always exact", () => {
    const next = lcg(21);
    for (let round = 0; round < 20; round++) {
      const set = new Set<string>();
      const n = 1 + Math.floor(next() * 300);
      for (let i = 0; i < n; i++) {
        const domain = next() < 0.8 ? "0000" : "0001";
        set.add(
          `${domain}:${hex(Math.floor(next() * 256), 2)}:${hex(Math.floor(next() * 32), 2)}.${Math.floor(next() * 8)}`,
        );
      }
      const specs = compactAddresses([...set]);
      expect([...expand(specs, ["0000", "0001", "0002"])].sort()).toEqual([...set].sort());
    }
  });
});
