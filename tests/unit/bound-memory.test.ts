// The bound functions, remembered small enough for Juju's stored-state quotas (issue 13 item 5).
import { describe, expect, it } from "vitest";
import { PACKED_BUDGET, packBindings, unpackBindings } from "../../src/bound-memory";
import { loadMemory } from "../../src/host-preparation";
import { addressNumber, addressOfNumber } from "../../src/pci-vocabulary";

const range = (from: string, count: number, ids: string): Record<string, string> => {
  const first = addressNumber(from)!;
  return Object.fromEntries(
    Array.from({ length: count }, (_, i) => [addressOfNumber(first + i), ids]),
  );
};

describe("packBindings", () => {
  it("addresses round-trip through their numbers, across slots and buses", () => {
    for (const a of ["0000:00:00.0", "0000:83:1f.7", "0001:ff:00.3", "ffff:ff:1f.7"])
      expect(addressOfNumber(addressNumber(a)!)).toBe(a);
    expect(addressNumber("0000:83:20.0")).toBeNull(); // slot is 5 bits
    expect(addressNumber("0000:83:00.8")).toBeNull();
  });

  it("10,000 VFs of eight PFs take a few hundred bytes and come back whole", () => {
    const bound: Record<string, string> = {};
    for (let p = 0; p < 8; p++)
      Object.assign(bound, range(`0000:${(0x10 + p * 0x18).toString(16)}:00.1`, 1250, "15b3:1018"));
    Object.assign(bound, { "0000:83:00.0": "10de:1bb0", "0000:83:00.1": "10de:10f0" });
    const packed = packBindings(bound);
    expect(JSON.stringify(packed).length).toBeLessThan(1024);
    expect(packed.dropped).toBeUndefined();
    expect(unpackBindings(packed)).toEqual(bound);
  });

  it("scattered addresses that cannot fit are counted, not stored past the budget", () => {
    const bound: Record<string, string> = {};
    for (let i = 0; i < 10_000; i++) bound[addressOfNumber(i * 2)] = "8086:1593"; // no runs at all
    const packed = packBindings(bound);
    expect(JSON.stringify(packed).length).toBeLessThan(PACKED_BUDGET + 64);
    expect(packed.dropped).toBeGreaterThan(0);
    const kept = unpackBindings(packed);
    expect(Object.keys(kept).length + packed.dropped!).toBe(10_000);
    for (const [a, ids] of Object.entries(kept)) expect(bound[a]).toBe(ids);
  });

  it("memory an older charm stored (an address → ids map) still reads", () => {
    const memory = loadMemory({
      files: { written: {}, regenerated: {} },
      boundIds: { "0000:83:00.0": "10de:1bb0" },
    });
    expect(unpackBindings(memory.bound)).toEqual({ "0000:83:00.0": "10de:1bb0" });
    expect("boundIds" in memory).toBe(false);
  });
});
