// Issue 13 item 3: `rebind` on SIGTERM (the agent's service or the host stopping, kill by hand)
// finishes or rolls back the function it is moving and stops; no function is left half moved.
// Through the packed dispatch, as Juju runs it.
//
// The sandbox's write-only sysfs attributes (every <driver>/unbind, drivers_probe) are fifos that
// this test serves as the kernel would: it keeps each one full, so the charm's write blocks until
// the test has done what the kernel does for it (drop or make the `driver` link). The test sees
// which attribute the charm is writing in /proc/<pid>/fd, and can send SIGTERM while the charm is
// blocked at any chosen one of those writes. driver_override stays a plain file (the charm reads
// it with every other attribute before it plans), so a stop lands between any two writes
// except between a function's driver_override and its unbind.
import { type ChildProcess, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type CharmUnderTest, deployPackedCharm } from "../support/charm-process";
import { makeTempHost, setUeventDriver } from "../support/hosts/build-host";
import { seedHost } from "../support/hosts/presets";

const GPU = "0000:83:00.0";
const AUDIO = "0000:83:00.1";
const MOVING = [GPU, AUDIO];
const BEFORE: Record<string, string> = { [GPU]: "nouveau", [AUDIO]: "snd_hda_intel" };
const DEVICES = "sys/bus/pci/devices";
const DRIVERS = "sys/bus/pci/drivers";

/** One write the charm made into a fifo, as the test-kernel read it. */
interface FifoWrite {
  path: string;
  value: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The kernel's side of the write-only attributes, served from fifos under a sandbox root. */
class FifoKernel {
  readonly writes: FifoWrite[] = [];
  readonly problems: string[] = [];
  private readonly fds = new Map<string, number>();
  private done = false;

  constructor(private readonly root: string) {
    const attrs = fs
      .readdirSync(path.join(root, DRIVERS))
      .map((d) => path.join(DRIVERS, d, "unbind"))
      .concat("sys/bus/pci/drivers_probe");
    for (const attr of attrs) {
      const file = fs.realpathSync(path.join(root, attr));
      fs.rmSync(file);
      const made = spawnSyncOk("mkfifo", [file]);
      if (made) throw new Error(made);
      // Both ends at once and never blocking: the charm's open never waits, its write does.
      const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      fill(fd);
      this.fds.set(file, fd);
    }
  }

  /** Serves the charm's writes until stop(); at the `stopAt`-th (1-based) one, first sends
   * SIGTERM and waits until the charm says it heard it. */
  async serve(charm: ChildProcess, heard: () => boolean, stopAt: number | null): Promise<void> {
    const pid = charm.pid!;
    while (!this.done) {
      const file = this.blockedOn(pid);
      if (file === null) {
        await sleep(3);
        continue;
      }
      if (this.writes.length + 1 === stopAt) {
        process.kill(pid, "SIGTERM");
        for (let t = 0; !heard(); t++) {
          if (charm.exitCode !== null || charm.signalCode !== null) {
            throw new Error(
              `the charm died at SIGTERM (${charm.signalCode ?? charm.exitCode}) blocked in a write to ${file}: that function is left half moved`,
            );
          }
          if (t > 2000) throw new Error("the charm never said it heard SIGTERM");
          await sleep(5);
        }
      }
      const attr = `/${path.relative(fs.realpathSync(this.root), file)}`;
      const predicted = this.act(attr);
      const value = await this.drain(pid, file);
      this.writes.push({ path: attr, value });
      if (value !== predicted) {
        this.problems.push(`${attr}: the kernel acted for ${predicted}, the charm wrote ${value}`);
      }
    }
  }

  /** Ends serve(); the fifos are closed by close(). */
  stop(): void {
    this.done = true;
  }

  close(): void {
    this.done = true;
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }

  /** The fifo the charm holds open for writing (its write is then blocked on our full pipe). */
  private blockedOn(pid: number): string | null {
    let entries: string[];
    try {
      entries = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      return null; // gone
    }
    for (const fd of entries) {
      try {
        const target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (this.fds.has(target)) return target;
      } catch {
        // closed while we looked
      }
    }
    return null;
  }

  /**
   * Does what the kernel does for a write to `attr`, BEFORE the charm's write returns (it cannot
   * return until we drain the pipe): the charm must never see the tree before the kernel acted.
   * The value is not known yet; it can only be the one moving function this write concerns
   * (checked against the value once read).
   */
  private act(attr: string): string {
    const unbind = /^\/sys\/bus\/pci\/drivers\/([^/]+)\/unbind$/.exec(attr);
    if (unbind) {
      const address = MOVING.find((a) => this.driverOf(a) === unbind[1]) ?? "(none bound)";
      if (address !== "(none bound)") this.unbind(address, unbind[1]!);
      return address;
    }
    const address = MOVING.find((a) => this.driverOf(a) === null) ?? "(none unbound)";
    if (address !== "(none unbound)")
      this.bind(address, this.override(address) ?? BEFORE[address]!);
    return address;
  }

  private devDir(address: string): string {
    return fs.realpathSync(path.join(this.root, DEVICES, address));
  }

  driverOf(address: string): string | null {
    try {
      return path.basename(fs.readlinkSync(path.join(this.devDir(address), "driver")));
    } catch {
      return null;
    }
  }

  /** driver_override as the kernel would hold it: the charm writes it in place (O_WRONLY, no
   * truncation, as into sysfs), so the value is the file's first line. */
  override(address: string): string | null {
    const text = fs.readFileSync(path.join(this.devDir(address), "driver_override"), "utf8");
    const first = text.split("\n")[0]!;
    return first === "" || first === "(null)" ? null : first;
  }

  private unbind(address: string, driver: string): void {
    fs.rmSync(path.join(this.devDir(address), "driver"));
    setUeventDriver(this.devDir(address), null);
    fs.rmSync(path.join(this.root, DRIVERS, driver, address), { force: true });
  }

  private bind(address: string, driver: string): void {
    const dev = this.devDir(address);
    const drv = fs.realpathSync(path.join(this.root, DRIVERS, driver));
    fs.symlinkSync(path.relative(dev, drv), path.join(dev, "driver"));
    fs.symlinkSync(path.relative(drv, dev), path.join(drv, address));
    setUeventDriver(dev, driver);
  }

  /** Reads the filler, then the charm's value until it closed the fifo; fills the pipe again. */
  private async drain(pid: number, file: string): Promise<string> {
    const fd = this.fds.get(file)!;
    const chunks: Buffer[] = [];
    const buf = Buffer.alloc(1 << 16);
    for (let t = 0; ; t++) {
      const n = readSome(fd, buf);
      if (n > 0) chunks.push(Buffer.from(buf.subarray(0, n)));
      else if (this.blockedOn(pid) !== file)
        break; // written and closed
      else await sleep(2);
      if (t > 20_000) throw new Error(`the charm never finished its write to ${file}`);
    }
    // One more read: the value may have landed between our last read and the close.
    const last = readSome(fd, buf);
    if (last > 0) chunks.push(Buffer.from(buf.subarray(0, last)));
    fill(fd);
    return Buffer.concat(chunks).toString("latin1").replace(/^\0+/, "");
  }
}

function spawnSyncOk(cmd: string, args: string[]): string | null {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return r.status === 0 ? null : `${cmd} ${args.join(" ")}: ${r.stderr}`;
}

/** Fills a pipe to the last byte (NUL filler), so the next writer blocks until it is drained. */
function fill(fd: number): void {
  for (const size of [1 << 16, 4096, 256, 16, 1]) {
    const chunk = Buffer.alloc(size);
    for (;;) {
      try {
        fs.writeSync(fd, chunk);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EAGAIN") break;
        throw e;
      }
    }
  }
}

function readSome(fd: number, buf: Buffer): number {
  try {
    return fs.readSync(fd, buf, 0, buf.length, null);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EAGAIN") return 0;
    throw e;
  }
}

describe("issue 13 item 3: rebind stopped by SIGTERM leaves no function half moved", () => {
  let host: ReturnType<typeof makeTempHost>;
  let unit: CharmUnderTest;
  let kernel: FifoKernel;
  beforeEach(() => {
    host = makeTempHost(seedHost(), "pci-sigterm-");
    unit = deployPackedCharm(host.root, { config: { devices: GPU } });
    kernel = new FifoKernel(host.root);
  });
  afterEach(() => {
    kernel?.close();
    unit?.cleanup();
    host.cleanup();
  });

  /** Runs `rebind devices=GPU` (GPU and its HDMI audio to vfio-pci), SIGTERM at the n-th fifo
   * write (null: never). */
  async function rebind(stopAt: number | null) {
    const child = unit.start({ name: "rebind-action", params: { devices: GPU } });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    const served = kernel.serve(child, () => /SIGTERM received/.test(stderr), stopAt);
    const code = await exited;
    kernel.stop();
    await served;
    unit.sim.finish(code);
    return { code, stderr, pid: child.pid!, action: unit.sim.readState().lastAction! };
  }

  /** Each moving function is either as it was or fully on vfio-pci, never between. */
  function expectWhole(): Record<string, "as-before" | "moved"> {
    const out: Record<string, "as-before" | "moved"> = {};
    for (const a of MOVING) {
      const driver = kernel.driverOf(a);
      const override = kernel.override(a);
      if (driver === BEFORE[a] && override === null) out[a] = "as-before";
      else if (driver === "vfio-pci" && override === "vfio-pci") out[a] = "moved";
      else throw new Error(`${a} is half moved: driver ${driver}, driver_override ${override}`);
    }
    return out;
  }

  it("without a signal the fifo kernel moves both functions (the bed works)", async () => {
    const { code, action, pid } = await rebind(null);
    expect(code).toBe(0);
    expect(kernel.problems).toEqual([]);
    expect(action.failed, action.failureMessage ?? "").toBe(false);
    expect(expectWhole()).toEqual({ [GPU]: "moved", [AUDIO]: "moved" });
    expect(kernel.writes.map((w) => w.path)).toEqual([
      "/sys/bus/pci/drivers/nouveau/unbind",
      "/sys/bus/pci/drivers_probe",
      "/sys/bus/pci/drivers/snd_hda_intel/unbind",
      "/sys/bus/pci/drivers_probe",
    ]);
    // Run in a worker thread, the charm is still the process Juju started (item 2): its tools'
    // parent is dispatch's pid; only dispatch's prefetch reads come from elsewhere.
    const calls = unit.sim.readState().calls;
    const fromCharm = calls.filter((c) => c.caller?.ppid === pid).map((c) => c.argv[0]);
    expect(fromCharm).toContain("action-set");
    for (const c of calls.filter((c) => c.caller?.ppid !== pid)) {
      expect(c.argv.join(" ")).toMatch(/^(config-get|state-get|action-get) --format=json/);
    }
  }, 60_000);

  // The four blocking writes of the move, in order; a SIGTERM while the charm is blocked in
  // each one is seen before the next write.
  const STEPS = [
    { at: 1, write: `unbind ${GPU} from nouveau`, stoppedAt: GPU },
    { at: 2, write: `drivers_probe ${GPU}`, stoppedAt: AUDIO },
    { at: 3, write: `unbind ${AUDIO} from snd_hda_intel`, stoppedAt: AUDIO },
  ];
  for (const step of STEPS) {
    it(`SIGTERM during ${step.write}: everything is put back, and the action says so`, async () => {
      const { code, stderr, action } = await rebind(step.at);
      expect(code).toBe(0);
      expect(stderr).toMatch(/actions\/rebind: SIGTERM received: finishing or undoing/);
      expect(kernel.problems).toEqual([]);
      expect(expectWhole()).toEqual({ [GPU]: "as-before", [AUDIO]: "as-before" });
      expect(action.failed).toBe(true);
      expect(action.failureMessage).toMatch(
        new RegExp(`^rebind stopped by SIGTERM at ${step.stoppedAt}, before it finished; `),
      );
      expect(action.failureMessage).toMatch(/every device is as it was before the action$/);
      const devices = action.results.devices as Record<string, Record<string, string>>;
      for (const d of Object.values(devices)) {
        expect(d.after).toBe(BEFORE[d.address!]);
        expect(["rolled-back", "not-attempted"]).toContain(d.status);
      }
    }, 60_000);
  }

  it("SIGTERM during the last write: the move is finished, kept, and the results say so", async () => {
    const { code, action } = await rebind(4);
    expect(code).toBe(0);
    expect(kernel.problems).toEqual([]);
    expect(expectWhole()).toEqual({ [GPU]: "moved", [AUDIO]: "moved" });
    expect(action.failed).toBe(false);
    expect(JSON.stringify(action.results.warnings)).toMatch(/SIGTERM arrived after the last write/);
  }, 60_000);
});
