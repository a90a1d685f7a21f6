// Hook latency of the arm64 charm UNDER EMULATION: the packed build/pci-passthrough_arm64.charm
// with its own arm64 Node.js, inside the VM bed's arm64 guest (Debian's arm64 kernel under
// qemu-system-aarch64, TCG, no KVM), on the guest's real sysfs. These are emulated-CPU numbers: they
// say how the charm behaves on arm64 and what it costs relative to a bare `node -e 0` there, not
// what a real arm64 server takes (TCG is many times slower than hardware).
//
// Run (after `npm run pack`, as root for the bed): node scripts/run-ts.mjs bench/arm64-emulated.ts [--runs N]
// It boots one guest, deploys the charm (install, first config-changed), then times rounds of
// `node -e 0`, a no-op config-changed and an update-status, interleaved, plus one forwarded hook
// tool call (the bed forwards the charm's hook-tool calls to the simulator on the host).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { bootGuest } from "../tests/vm/lib/guest";
import { deployCharmInGuest, JUJU_CHARM_DIR } from "../tests/vm/lib/guest-charm";
import { SCRIPTS, VM_CACHE } from "../tests/vm/lib/paths";
import type { BedKernel } from "../tests/vm/lib/require-tools";
import { ARM64, device } from "../tests/vm/lib/topologies";
import { max, median, min } from "./lib/measure";

async function main(): Promise<void> {
  const runsAt = process.argv.indexOf("--runs");
  const runs = runsAt >= 0 ? Number(process.argv[runsAt + 1]) : 10;
  const prep = spawnSync("bash", [path.join(SCRIPTS, "prepare.sh")], {
    env: { ...process.env, VM_ARCH: "arm64", VM_CACHE_DIR: VM_CACHE },
    stdio: ["ignore", "inherit", "inherit"],
  });
  if (prep.status !== 0) throw new Error("scripts/vm/prepare.sh (VM_ARCH=arm64) failed");
  const kernel = JSON.parse(
    readFileSync(path.join(VM_CACHE, "kernel-arm64.json"), "utf8"),
  ) as BedKernel;
  const share = path.join(VM_CACHE, "run", `bench-arm64-${process.pid}`);
  spawnSync("mkdir", ["-p", share]);

  const guest = await bootGuest({
    arch: "arm64",
    topology: ARM64,
    iommu: "smmuv3",
    name: "bench-arm64",
    kernel: kernel.kernel,
    initrd: kernel.initramfs,
    root: { kind: "bed", modules: kernel.modules, rootfs: kernel.rootfs },
    append: ["iommu.passthrough=1"],
    share,
    memoryMb: 2048,
  });
  try {
    const charm = await deployCharmInGuest({
      guest,
      share,
      arch: "arm64",
      config: { devices: device(ARM64, "twinA").address },
      recordedCommands: ["update-grub", "update-initramfs"],
    });
    for (const event of ["install", "config-changed"] as const) {
      const r = await charm.dispatch(event);
      if (r.exitCode !== 0) throw new Error(`${event} failed: ${charm.explain(r)}`);
    }
    // Timed on the host, like charm.dispatch's ms: both include the command channel's round trip
    // (busybox's date has no sub-second format to time inside the guest).
    const timed = async (script: string): Promise<number> => {
      const started = Date.now();
      await guest.exec(`${script} >/dev/null`);
      return Date.now() - started;
    };
    const node = `${JUJU_CHARM_DIR}/runtime/bin/node`;
    const samples: Record<string, number[]> = {
      "node -e 0": [],
      "config-changed (no-op)": [],
      "update-status": [],
      "one forwarded hook tool (config-get)": [],
    };
    const tool = path.join(share, "tool-proxy", "config-get");
    for (let i = 0; i < runs; i++) {
      samples["node -e 0"]!.push(await timed(`${node} -e 0`));
      samples["config-changed (no-op)"]!.push((await charm.dispatch("config-changed")).ms);
      samples["update-status"]!.push((await charm.dispatch("update-status")).ms);
      samples["one forwarded hook tool (config-get)"]!.push(
        await timed(`JUJU_UNIT_NAME=pci-passthrough/0 ${tool} --format=json --all`),
      );
    }
    const base = median(samples["node -e 0"]!);
    console.log(
      `arm64 charm under emulation (qemu-system-aarch64 TCG, -cpu max, 2 vCPUs on this host), ${runs} rounds, guest boot ${(guest.bootMs / 1000).toFixed(1)} s`,
    );
    console.log("| command | median ms | min ms | max ms | / node -e 0 |");
    console.log("|---|---|---|---|---|");
    for (const [name, values] of Object.entries(samples)) {
      console.log(
        `| ${name} | ${median(values)} | ${min(values)} | ${max(values)} | ${(median(values) / base).toFixed(2)} |`,
      );
    }
  } finally {
    await guest.shutdown();
    spawnSync("rm", ["-rf", share]);
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
