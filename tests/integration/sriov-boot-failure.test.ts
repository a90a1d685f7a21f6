// Issue 21 item 6: when the kernel says no. The boot that should have made a PF's VFs happened
// (the boot id changed since the charm wrote the rule) and the count is still wrong: the status
// says what the kernel said and what fixes it (pci=realloc through extra-kernel-params, SR-IOV /
// Above 4G Decoding in the firmware, or the driver's refusal), never "reboot required" again.
// Through the packed dispatch, on amdHost (X710 41:00.1, sriov_totalvfs 64, no VF yet).
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { READ } from "../../src/host/root";
import { type CharmUnderTest, useCharmOnHosts } from "../support/charm-process";
import { amdHost } from "../support/hosts/presets";

const PF = "0000:41:00.1";
const BOOT_A = "6f1c3f7e-0c59-4d55-9a0f-3c2a3b2b7d11";
const BOOT_B = "0b7e57f0-7a63-4bd8-a3c7-8f9d6b3f0c42";

describe("a boot that did not make the VFs (issue 21 item 6)", () => {
  const deployOn = useCharmOnHosts();
  let unit: CharmUnderTest | undefined;
  const write = (hostPath: string, text: string) => {
    const file = path.join(unit!.root, hostPath);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
  };
  const status = () => unit!.sim.readState().unitStatus;
  const hook = (event: string) => {
    const r = unit!.dispatch(event);
    expect(r.exitCode, r.stderr).toBe(0);
  };

  function installedThenRebooted(kmsg: string | null): void {
    unit = deployOn(amdHost(), { config: { devices: `- {address: "${PF}", vfs: 4}` } });
    write(READ.bootId, `${BOOT_A}\n`);
    hook("install");
    expect(status().message).toContain(`reboot required: ${PF} has 0 VFs, 4 planned`);
    hook("update-status");
    expect(status().message).toContain("reboot required");
    // The boot: a new boot id, and still no VF.
    write(READ.bootId, `${BOOT_B}\n`);
    if (kmsg !== null) write(READ.kmsg, kmsg);
    hook("start");
  }

  it("ENOMEM (not enough MMIO resources): the kernel's words and pci=realloc, never reboot", () => {
    installedThenRebooted(
      [
        "6,812,4123456,-;ixgbe 0000:41:00.1: Intel(R) 10 Gigabit Network Connection",
        " SUBSYSTEM=pci",
        " DEVICE=+pci:0000:41:00.1",
        "3,1040,9123456,-;pci 0000:41:00.1: not enough MMIO resources for SR-IOV",
        "5,1041,9123500,-;pci-passthrough: sriov-vfs: 0000:41:00.1: could not create 4 VFs (is its driver bound? see dmesg)",
        "",
      ].join("\n"),
    );
    const s = status();
    expect(s.status).toBe("blocked");
    expect(s.message).toContain(`the boot did not create ${PF}'s 4 VFs (it has 0)`);
    expect(s.message).toContain("not enough MMIO resources for SR-IOV");
    expect(s.message).toContain("extra-kernel-params=pci=realloc");
    expect(s.message).toContain("Above 4G Decoding");
    expect(s.message).not.toMatch(/reboot required/);
    expect(s.message).not.toContain("10 Gigabit");
    // The next hooks say the same (the rule did not change, the boot id did).
    hook("update-status");
    expect(status().message).toBe(s.message);
  });

  it("the driver refused (EBUSY): says so and points at the driver, not at a reboot", () => {
    installedThenRebooted("3,1040,9123456,-;ice 0000:41:00.1: Failed to enable SR-IOV: -16\n");
    expect(status().message).toContain(
      'the kernel said "ice 0000:41:00.1: Failed to enable SR-IOV: -16"',
    );
    expect(status().message).toContain("driver refused");
    expect(status().message).not.toMatch(/reboot required/);
  });

  it("no kernel log to read: still no reboot, the usual fix named", () => {
    installedThenRebooted(null);
    expect(status().message).toContain("the kernel log holds no reason");
    expect(status().message).toContain("pci=realloc");
    expect(status().message).not.toMatch(/reboot required/);
  });

  it("a new plan (vfs changed) after the failed boot asks for a boot again", () => {
    installedThenRebooted(null);
    unit!.sim.updateState((st) => {
      st.config["devices"] = `- {address: "${PF}", vfs: 2}`;
    });
    hook("config-changed");
    expect(status().message).toContain(`reboot required: ${PF} has 0 VFs, 2 planned`);
  });
});
