// The owned files checked by the programs that read them: sh/dash/busybox and shellcheck for the
// scripts, the real grub-mkconfig for the drop-in, kmod for modprobe.d, udevadm for the rule, and
// the bind helper run against a fake sysfs tree (real directories and symlinks) under a temp root.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, symlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { OWNED } from "../../src/host/root";
import {
  renderBindHelper,
  renderGrubDropIn,
  renderInitramfsHook,
  renderModprobeConf,
  renderUdevRules,
} from "../../src/plan/render-files";
import { gpu } from "../support/bound-devices";
import { grubMkconfigLinuxLines } from "../support/grub-mkconfig";
import { useTempDirs, writeFileWithMode as write } from "../support/temp-files";
import { requireFile, requireMountNamespace, requireTool } from "../support/tools";

/** The shells a host may run the helper with, and the Debian package of each (scripts/setup.sh). */
const SHELLS: Record<string, string> = { sh: "dash", dash: "dash", "busybox sh": "busybox-static" };

const makeTemp = useTempDirs();
const temp = (): string => makeTemp("pci-render-");

describe("grub drop-in", () => {
  const dropIn = renderGrubDropIn(["intel_iommu=on", "iommu=pt", "video=efifb:off"]);

  it("is valid sh", () => {
    const dir = temp();
    const file = write(join(dir, "99.cfg"), dropIn);
    expect(spawnSync("sh", ["-n", file]).status).toBe(0);
  });

  it.each([
    ["after /etc/default/grub", ['GRUB_CMDLINE_LINUX_DEFAULT="quiet splash"'], "quiet splash "],
    [
      "after a 50-cloudimg-settings.cfg that replaces it",
      [
        'GRUB_CMDLINE_LINUX_DEFAULT="quiet splash"',
        'GRUB_CMDLINE_LINUX_DEFAULT="console=tty1 console=ttyS0"',
      ],
      "console=tty1 console=ttyS0 ",
    ],
    ["with nothing set before", ['GRUB_CMDLINE_LINUX_DEFAULT=""'], ""],
  ])("appends our parameters %s", (_, before, prefix) => {
    const dir = temp();
    const files = before.map((line, i) => write(join(dir, `${i}.cfg`), `${line}\n`));
    files.push(write(join(dir, "99-pci-passthrough.cfg"), dropIn));
    const script = `${files.map((f) => `. '${f}'`).join("\n")}\nprintf '%s' "$GRUB_CMDLINE_LINUX_DEFAULT"`;
    const out = execFileSync("sh", ["-c", script], { encoding: "utf8" });
    expect(out).toBe(`${prefix}intel_iommu=on iommu=pt video=efifb:off`);
  });

  it("refuses to render a parameter that did not pass validation", () => {
    expect(() => renderGrubDropIn(['a"; reboot; "'])).toThrow(/refusing to render/);
    expect(() => renderGrubDropIn(["$(reboot)"])).toThrow(/refusing to render/);
  });

  it("gives the real grub-mkconfig a normal entry with the operator's params then ours", () => {
    requireMountNamespace();
    requireTool("grub-mkconfig", "grub-common");
    const t = temp();
    write(
      join(t, "default/grub"),
      'GRUB_DEFAULT=0\nGRUB_TIMEOUT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet splash"\nGRUB_CMDLINE_LINUX=""\n',
    );
    write(
      join(t, "default/grub.d/50-cloudimg-settings.cfg"),
      'GRUB_CMDLINE_LINUX_DEFAULT="console=tty1 console=ttyS0"\n',
    );
    write(join(t, "default/grub.d/99-pci-passthrough.cfg"), dropIn);
    write(join(t, "boot/vmlinuz-6.8.0-45-generic"), "");
    write(join(t, "boot/initrd.img-6.8.0-45-generic"), "");
    const { normal, recovery } = grubMkconfigLinuxLines(t);
    expect(normal.length).toBeGreaterThan(0);
    for (const l of normal) {
      expect(l).toMatch(/ console=tty1 console=ttyS0 intel_iommu=on iommu=pt video=efifb:off$/);
    }
    // Recovery entries only get GRUB_CMDLINE_LINUX: a broken passthrough setup can be undone.
    for (const l of recovery) expect(l).not.toMatch(/intel_iommu/);
  }, 60_000);
});

describe("modprobe.d", () => {
  it("is absent when there is nothing to say", () => {
    expect(renderModprobeConf([], [])).toBeNull();
  });

  it("parses cleanly with kmod (modprobe -C … --showconfig)", () => {
    requireTool("modprobe", "kmod");
    const dir = temp();
    write(
      join(dir, "pci-passthrough.conf"),
      renderModprobeConf(["nouveau", "nvidiafb"], ["nouveau", "snd_hda_intel"])!,
    );
    const r = spawnSync("modprobe", ["-C", dir, "--showconfig"], { encoding: "utf8" });
    expect(r.stderr).not.toMatch(/ERROR|bad line/);
    for (const line of [
      "blacklist nouveau",
      "blacklist nvidiafb",
      "softdep nouveau pre: vfio-pci",
      "softdep snd_hda_intel pre: vfio-pci",
    ]) {
      expect(r.stdout.split("\n")).toContain(line);
    }
  });
});

describe("udev rule", () => {
  it("matches address, vendor and device, sets the override and runs the helper", () => {
    const rules = renderUdevRules([gpu])!;
    const line = rules.split("\n").find((l) => l.startsWith("ACTION"))!;
    const pairs = line.split(", ");
    expect(pairs).toEqual([
      'ACTION=="add"',
      'SUBSYSTEM=="pci"',
      'KERNEL=="0000:83:00.0"',
      'ATTR{vendor}=="0x10de"',
      'ATTR{device}=="0x1bb0"',
      'ATTR{driver_override}="vfio-pci"',
      `RUN+="${OWNED.bindHelper} %k"`,
    ]);
  });

  it("refuses an address or id that is not what sysfs spells", () => {
    expect(() => renderUdevRules([{ ...gpu, address: '0000:83:00.0", RUN+="/bin/sh' }])).toThrow();
    expect(() => renderUdevRules([{ ...gpu, vendorId: "10DE" }])).toThrow();
  });

  it("is accepted by udevadm's rule parser (only our rules file loaded; it matches no device)", () => {
    requireMountNamespace();
    requireTool("udevadm", "udev");
    const t = temp();
    mkdirSync(join(t, "empty"));
    // An address no machine has, so nothing matches and nothing is written to sysfs.
    write(
      join(t, "etc", "40-pci-passthrough.rules"),
      renderUdevRules([{ ...gpu, address: "0000:ff:1f.7" }])!,
    );
    const script = [
      `mount --bind '${t}/empty' /usr/lib/udev/rules.d`,
      `mount --bind '${t}/etc' /etc/udev/rules.d`,
      // Any device will do (a machine or container may have no PCI device): the rules are read
      // before matching, and our rule matches only SUBSYSTEM=="pci".
      "udevadm test --action=add /sys/devices/virtual/mem/null",
    ].join(" && ");
    const r = spawnSync("unshare", ["-m", "sh", "-c", script], { encoding: "utf8" });
    const out = `${r.stdout}\n${r.stderr}`;
    expect(out).toContain("Reading rules file: /etc/udev/rules.d/40-pci-passthrough.rules");
    expect(out).not.toMatch(/40-pci-passthrough\.rules:\d+/);
  });
});

describe("vfio-bind helper", () => {
  const helper = renderBindHelper();

  it("holds no address and no config value", () => {
    expect(helper).not.toMatch(/[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]/);
    expect(helper.startsWith("#!/bin/sh\n")).toBe(true);
  });

  it.each(Object.keys(SHELLS))("passes %s -n", (shell) => {
    requireTool(shell.split(" ")[0]!, SHELLS[shell]!);
    const dir = temp();
    const file = write(join(dir, "vfio-bind"), helper, 0o755);
    const [cmd, ...args] = shell.split(" ");
    expect(spawnSync(cmd!, [...args, "-n", file]).status).toBe(0);
  });

  it("passes shellcheck", () => {
    requireTool("shellcheck", "shellcheck");
    const dir = temp();
    const file = write(join(dir, "vfio-bind"), helper, 0o755);
    const r = spawnSync("shellcheck", ["-s", "sh", file], { encoding: "utf8" });
    expect(r.stdout).toBe("");
    expect(r.status).toBe(0);
  });

  /** A fake sysfs with one GPU at 0000:83:00.0, bound to `driver` (null = unbound). */
  function fakeHost(driver: string | null, override = "vfio-pci") {
    const root = temp();
    const real = join(root, "sys/devices/pci0000:80/0000:80:02.0/0000:83:00.0");
    write(join(real, "config"), "");
    write(join(real, "vendor"), "0x10de\n");
    write(join(real, "device"), "0x1bb0\n");
    write(join(real, "driver_override"), `${override}\n`);
    mkdirSync(join(root, "sys/bus/pci/devices"), { recursive: true });
    symlinkSync(
      "../../../devices/pci0000:80/0000:80:02.0/0000:83:00.0",
      join(root, "sys/bus/pci/devices/0000:83:00.0"),
    );
    for (const d of ["nouveau", "vfio-pci"]) {
      write(join(root, "sys/bus/pci/drivers", d, "unbind"), "");
      write(join(root, "sys/bus/pci/drivers", d, "bind"), "");
    }
    write(join(root, "sys/bus/pci/drivers_probe"), "");
    if (driver) symlinkSync(`../../../../bus/pci/drivers/${driver}`, join(real, "driver"));
    const bin = join(root, "fakebin");
    write(join(bin, "modprobe"), `#!/bin/sh\necho "modprobe $*" >>'${root}/calls'\n`, 0o755);
    write(join(bin, "logger"), `#!/bin/sh\necho "logger $*" >>'${root}/calls'\n`, 0o755);
    const file = write(join(root, "vfio-bind"), helper, 0o755);
    const run = (address: string, shell = "sh") => {
      const [cmd, ...args] = shell.split(" ");
      const r = spawnSync(cmd!, [...args, file, address], {
        encoding: "utf8",
        env: { PCI_PASSTHROUGH_ROOT: root, PATH: `${bin}:/usr/bin:/bin` },
      });
      const calls = existsSync(join(root, "calls"))
        ? readFileSync(join(root, "calls"), "utf8")
        : "";
      return { status: r.status, stderr: r.stderr, calls };
    };
    const read = (p: string) => readFileSync(join(root, p), "utf8");
    return { root, run, read };
  }

  it.each(["sh", "busybox sh"])(
    "with %s: unbinds nouveau, asks the kernel to probe, and reports when vfio-pci did not take it",
    (shell) => {
      requireTool(shell.split(" ")[0]!, SHELLS[shell]!);
      const h = fakeHost("nouveau");
      const r = h.run("0000:83:00.0", shell);
      expect(h.read("sys/bus/pci/drivers/nouveau/unbind")).toBe("0000:83:00.0");
      expect(h.read("sys/bus/pci/drivers_probe")).toBe("0000:83:00.0");
      // The fake tree has no kernel to rebind it: the helper must say so and fail.
      expect(r.status).toBe(1);
      // busybox sh runs its own modprobe/logger applets before PATH, so only sh shows the calls.
      if (shell === "sh") {
        expect(r.calls).toContain("modprobe -q vfio-pci");
        expect(r.calls).toMatch(
          /logger -t pci-passthrough -- vfio-bind: 0000:83:00.0: on 'nouveau' after probing/,
        );
      }
    },
  );

  it("does nothing for a function already on vfio-pci", () => {
    const h = fakeHost("vfio-pci");
    const r = h.run("0000:83:00.0");
    expect(r.status).toBe(0);
    expect(h.read("sys/bus/pci/drivers/vfio-pci/unbind")).toBe("");
    expect(h.read("sys/bus/pci/drivers_probe")).toBe("");
  });

  it("probes an unbound function without unbinding anything", () => {
    const h = fakeHost(null);
    const r = h.run("0000:83:00.0");
    expect(h.read("sys/bus/pci/drivers_probe")).toBe("0000:83:00.0");
    expect(h.read("sys/bus/pci/drivers/nouveau/unbind")).toBe("");
    expect(r.calls).toMatch(/on 'no driver' after probing/);
  });

  it("leaves a function alone when its driver_override is not vfio-pci", () => {
    const h = fakeHost("nouveau", "(null)");
    const r = h.run("0000:83:00.0");
    expect(r.status).toBe(0);
    expect(h.read("sys/bus/pci/drivers/nouveau/unbind")).toBe("");
    expect(r.calls).toMatch(/driver_override is '\(null\)', not vfio-pci/);
  });

  it.each([
    ["", 2],
    ["../../../../etc/passwd", 2],
    ["0000:83:00.0; reboot", 2],
    ["0000:83:00.0/../x", 2],
    ["0000:84:00.0", 1],
  ])("refuses %j (exit %i) without writing", (address, code) => {
    const h = fakeHost("nouveau");
    const r = h.run(address);
    expect(r.status).toBe(code);
    expect(h.read("sys/bus/pci/drivers/nouveau/unbind")).toBe("");
    expect(h.read("sys/bus/pci/drivers_probe")).toBe("");
  });
});

describe("initramfs hook", () => {
  const hook = renderInitramfsHook();

  it("passes sh -n and shellcheck", () => {
    const dir = temp();
    const file = write(join(dir, "pci-passthrough"), hook, 0o755);
    expect(spawnSync("sh", ["-n", file]).status).toBe(0);
    requireTool("shellcheck", "shellcheck");
    // SC1091: hook-functions is sourced from the target system, not available to shellcheck.
    const r = spawnSync("shellcheck", ["-s", "sh", "-e", "SC1091", file], { encoding: "utf8" });
    expect(r.stdout).toBe("");
  });

  it("answers prereqs without sourcing anything", () => {
    const dir = temp();
    const file = write(join(dir, "pci-passthrough"), hook, 0o755);
    expect(execFileSync("sh", [file, "prereqs"], { encoding: "utf8" })).toBe("udev\n");
  });

  it("puts the rule and the helper into DESTDIR with initramfs-tools' own hook-functions", () => {
    requireMountNamespace();
    requireFile("/usr/share/initramfs-tools/hook-functions", "initramfs-tools-core");
    const t = temp();
    const hookFile = write(join(t, "hook"), hook, 0o755);
    const script = [
      `mkdir -p ${dirname(OWNED.udevRule)} ${dirname(dirname(OWNED.bindHelper))}`,
      `mount -t tmpfs none ${dirname(OWNED.udevRule)}`,
      `mount -t tmpfs none ${dirname(dirname(OWNED.bindHelper))}`,
      `mkdir -p ${dirname(OWNED.bindHelper)}`,
      `echo 'ACTION=="add"' > ${OWNED.udevRule}`,
      `printf '#!/bin/sh\\nexit 0\\n' > ${OWNED.bindHelper}`,
      `chmod 755 ${OWNED.bindHelper}`,
      // No modules for this made-up kernel version: manual_add_modules must stay quiet.
      `DESTDIR='${t}/dest' version=0.0.0-none verbose=n CONFDIR=/etc/initramfs-tools sh '${hookFile}'`,
    ].join(" && ");
    const r = spawnSync("unshare", ["-m", "sh", "-c", script], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    expect(readFileSync(join(t, "dest", OWNED.udevRule), "utf8")).toBe('ACTION=="add"\n');
    expect(readFileSync(join(t, "dest", OWNED.bindHelper), "utf8")).toBe("#!/bin/sh\nexit 0\n");
  });

  it("adds the vfio modules, the udev rule and the helper (hook-functions recorded)", () => {
    requireMountNamespace();
    requireFile("/usr/share/initramfs-tools", "initramfs-tools-core");
    const t = temp();
    const log = join(t, "calls");
    write(
      join(t, "itools", "hook-functions"),
      [
        `manual_add_modules() { echo "manual_add_modules $*" >>'${log}'; }`,
        `copy_file() { echo "copy_file $*" >>'${log}'; }`,
        `copy_exec() { echo "copy_exec $*" >>'${log}'; }`,
        "",
      ].join("\n"),
    );
    const hookFile = write(join(t, "hook"), hook, 0o755);
    const script = [
      `mount --bind '${t}/itools' /usr/share/initramfs-tools`,
      `mkdir -p ${dirname(OWNED.udevRule)} ${dirname(OWNED.bindHelper)}`,
      `mount -t tmpfs none ${dirname(OWNED.udevRule)}`,
      `mount -t tmpfs none ${dirname(OWNED.bindHelper)}`,
      `echo rule > ${OWNED.udevRule}`,
      `echo helper > ${OWNED.bindHelper}`,
      `DESTDIR='${t}/dest' version=6.8.0-45-generic sh '${hookFile}'`,
    ].join(" && ");
    const r = spawnSync("unshare", ["-m", "sh", "-c", script], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(log, "utf8").trim().split("\n")).toEqual([
      "manual_add_modules vfio vfio_iommu_type1 vfio_pci vfio_pci_core irqbypass",
      `copy_file config ${OWNED.udevRule}`,
      `copy_exec ${OWNED.bindHelper}`,
    ]);
  });
});
