/**
 * A Linux guest under QEMU that tests drive through a command channel.
 *
 * The channel is a virtio-serial port: the host listens on a unix socket, QEMU connects to it at
 * start, and scripts/vm/guest-agent.sh inside the guest answers one line per command (base64
 * fields, so command output can never break the framing). The kernel console (ttyS0 on QEMU's
 * stdout) is kept in memory and written to test-artifacts/vm/<name>.console.log when a boot or a
 * test fails.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { ARTIFACTS } from "./paths";
import { progress, seconds } from "./progress";
import { type GuestArch, type GuestRoot, type IommuKind, qemuArgs, qemuBinary } from "./qemu-args";
import type { Topology } from "./topologies";

/** What a command inside the guest produced. */
export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Killed inside the guest after this long (default 60 s). */
  timeoutMs?: number;
}

/** A hook-tool call a guest forwarded to the host (scripts/vm/hook-tool-proxy.sh). */
export interface ToolCall {
  tool: string;
  env: Record<string, string>;
  /** What the tool got on stdin; null unless it was called with `--file -`. */
  stdin: string | null;
  argv: string[];
}

/** Runs a forwarded hook-tool call on the host. */
export type ToolHandler = (call: ToolCall) => RunResult | Promise<RunResult>;

/** A command that exited non-zero when the caller asked for success. */
export class GuestCommandError extends Error {
  constructor(
    readonly guest: string,
    readonly command: string,
    readonly result: RunResult,
  ) {
    super(
      `in guest ${guest}: \`${command}\` exited ${result.exitCode}\n` +
        `--- stdout\n${result.stdout}--- stderr\n${result.stderr}`,
    );
    this.name = "GuestCommandError";
  }
}

/** The guest never said READY, or died. The message names the console log to read. */
export class GuestBootError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GuestBootError";
  }
}

export interface BootOptions {
  /** Default amd64 (qemu-system-x86_64); arm64 boots qemu-system-aarch64. */
  arch?: GuestArch;
  topology: Topology;
  iommu: IommuKind;
  /** Names the console log (test-artifacts/vm/<name>.console.log) and, in tier 1, the hostname. */
  name: string;
  kernel: string;
  initrd: string;
  root: GuestRoot;
  append?: string[];
  cmdline?: string;
  /**
   * A host folder the guest may write, mounted at the same path inside the guest (so paths the
   * host writes into files, like the unit simulator's tool wrappers, stay valid there).
   */
  share?: string;
  memoryMb?: number;
  cpus?: number;
  /** Give up on the boot after this long (default 180 s; TCG on a busy 2-core CI is slow). */
  bootTimeoutMs?: number;
  /** Another QEMU than the machine's (the igb tier's QEMU 10, scripts/vm/qemu10.sh): its binary,
   * its module folder and its firmware folders (`-L`). */
  qemu?: { binary: string; moduleDir: string; dataDirs: string[] };
}

const CONSOLE_LIMIT = 32 * 1024 * 1024;

type Pending = {
  resolve: (r: RunResult) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
};

/** A booted guest. */
export class Guest {
  /** Milliseconds from QEMU's start to the agent's READY. */
  bootMs = 0;
  /** `uname -r` of the guest, as the agent reported it. */
  release = "";
  private consoleChunks: string[] = [];
  private consoleBytes = 0;
  private droppedBytes = 0;
  private socket: net.Socket | undefined;
  private buffered = "";
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private onReady: ((release: string) => void) | undefined;
  private toolHandler: ToolHandler | undefined;
  private deathListeners: Array<(why: string) => void> = [];

  constructor(
    readonly name: string,
    private readonly qemu: ChildProcess,
    private readonly tmp: string,
  ) {
    const keep = (chunk: Buffer) => this.appendConsole(chunk.toString("utf8"));
    qemu.stdout?.on("data", keep);
    qemu.stderr?.on("data", keep);
    qemu.on("exit", (code, signal) => {
      this.exited = { code, signal };
      this.failAll(`QEMU exited (code ${code}, signal ${signal})`);
    });
  }

  /** Whether QEMU is still running. */
  get alive(): boolean {
    return this.exited === undefined;
  }

  /** The whole kernel console so far (and QEMU's own warnings). */
  console(): string {
    const head = this.droppedBytes ? `[... ${this.droppedBytes} bytes dropped ...]\n` : "";
    return head + this.consoleChunks.join("");
  }

  /** Writes the console to test-artifacts/vm/<name>.console.log, prints and returns the path. */
  saveConsole(reason: string): string {
    mkdirSync(ARTIFACTS, { recursive: true });
    const file = path.join(ARTIFACTS, `${this.name}.console.log`);
    writeFileSync(file, `# ${reason}\n# ${new Date().toISOString()}\n${this.console()}`);
    console.error(`[vm] ${this.name}: ${reason}; kernel console saved to ${file}`);
    return file;
  }

  /** Runs a shell script inside the guest (as root, cwd /) and returns what it produced. */
  run(command: string, opts: RunOptions = {}): Promise<RunResult> {
    const timeoutMs = opts.timeoutMs ?? 60_000;
    if (!this.alive || !this.socket) {
      return Promise.reject(new Error(`guest ${this.name} is not running`));
    }
    const id = this.nextId++;
    const secs = Math.max(1, Math.ceil(timeoutMs / 1000));
    return new Promise<RunResult>((resolve, reject) => {
      // The guest kills the command after `secs`; this host-side timer only fires if the guest
      // itself stopped answering.
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new Error(
            `guest ${this.name} did not answer \`${command}\` within ${timeoutMs + 15_000} ms`,
          ),
        );
      }, timeoutMs + 15_000);
      this.pending.set(id, { resolve, reject, timer });
      const encoded = Buffer.from(command, "utf8").toString("base64");
      this.socket?.write(`${id} ${secs} ${encoded}\n`);
    });
  }

  /** Runs a command that must succeed; returns its stdout, throws GuestCommandError otherwise. */
  async exec(command: string, opts: RunOptions = {}): Promise<string> {
    const result = await this.run(command, opts);
    if (result.exitCode !== 0) {
      throw new GuestCommandError(this.name, command, result);
    }
    return result.stdout;
  }

  /** Reads a file of the guest (its chroot in tier 1). */
  async readFile(file: string): Promise<string> {
    return this.exec(`cat -- ${shellQuote(file)}`);
  }

  /** Writes a file in the guest, creating its folder. */
  async writeFile(file: string, content: string, mode = "0644"): Promise<void> {
    const b64 = Buffer.from(content, "utf8").toString("base64");
    const q = shellQuote(file);
    await this.exec(
      `mkdir -p "$(dirname -- ${q})" && printf %s ${b64} | base64 -d > ${q} && chmod ${mode} ${q}`,
    );
  }

  /**
   * Ends the guest. `clean` asks the agent to sync and power off (tier 2 needs the disk image
   * consistent); otherwise QEMU is just stopped (tier 1 keeps nothing).
   */
  async shutdown(opts: { clean?: boolean; timeoutMs?: number } = {}): Promise<void> {
    if (process.env.VM_KEEP_CONSOLE === "1") {
      // Saved once QEMU is gone, so the log includes the power-off.
      const save = () => this.saveConsole("VM_KEEP_CONSOLE=1");
      if (this.alive) this.qemu.once("exit", save);
      else save();
    }
    if (this.alive && opts.clean && this.socket) {
      const id = this.nextId++;
      // Not awaited: the guest goes away before it can answer.
      // sysrq s/u/o: sync, force every filesystem read-only (a plain remount fails while
      // journald holds files open), power off. The next boot finds a clean journal, and debugfs
      // reads what the guest wrote without replaying anything.
      const script = [
        "sync",
        "echo s > /proc/sysrq-trigger",
        "echo u > /proc/sysrq-trigger",
        "sleep 2",
        "echo o > /proc/sysrq-trigger",
      ].join("; ");
      this.socket.write(`${id} 30 ${Buffer.from(script).toString("base64")}\n`);
      await this.waitExit(opts.timeoutMs ?? 60_000);
    }
    if (this.alive) {
      this.qemu.kill("SIGTERM");
      if (!(await this.waitExit(10_000))) this.qemu.kill("SIGKILL");
      await this.waitExit(10_000);
    }
    this.socket?.destroy();
    rmSync(this.tmp, { recursive: true, force: true });
  }

  /** Resolves true once QEMU has exited, false after timeoutMs. */
  waitExit(timeoutMs: number): Promise<boolean> {
    if (!this.alive) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.qemu.once("exit", () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** @internal Called once QEMU connected to the agent socket. */
  attach(socket: net.Socket): void {
    this.socket = socket;
    socket.setEncoding("utf8");
    socket.on("data", (data: string) => {
      this.buffered += data;
      let nl = this.buffered.indexOf("\n");
      while (nl >= 0) {
        this.handleLine(this.buffered.slice(0, nl));
        this.buffered = this.buffered.slice(nl + 1);
        nl = this.buffered.indexOf("\n");
      }
    });
    socket.on("close", () => this.failAll("the command channel closed"));
    socket.on("error", () => {});
  }

  /** Sets who answers hook-tool calls the guest forwards (one handler at a time). */
  setToolHandler(handler: ToolHandler | undefined): void {
    this.toolHandler = handler;
  }

  /** @internal Called once QEMU connected to the hook-tool proxy's socket. */
  attachTools(socket: net.Socket): void {
    let buffered = "";
    // One call at a time: the guest's proxy waits for each answer before the charm goes on.
    let chain = Promise.resolve();
    socket.setEncoding("utf8");
    socket.on("data", (data: string) => {
      buffered += data;
      let nl = buffered.indexOf("\n");
      while (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        chain = chain.then(async () => {
          const reply = await this.answerToolCall(line);
          socket.write(`${reply.exitCode} ${b64(reply.stdout)} ${b64(reply.stderr)}\n`);
        });
        nl = buffered.indexOf("\n");
      }
    });
    socket.on("error", () => {});
  }

  private async answerToolCall(line: string): Promise<RunResult> {
    const f = line.trim().split(" ");
    if (f[0] !== "CALL" || f.length !== 4) {
      return { exitCode: 126, stdout: "", stderr: `vmbed: malformed hook-tool call: ${line}\n` };
    }
    // env entries (never empty), one empty entry, then argv (whose entries may be empty).
    const entries = Buffer.from(f[2]!, "base64").toString("utf8").split("\0").slice(0, -1);
    const split = entries.indexOf("");
    const env: Record<string, string> = {};
    for (const entry of entries.slice(0, split)) {
      const eq = entry.indexOf("=");
      if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
    const call: ToolCall = {
      tool: f[1]!,
      env,
      stdin: f[3] === "-" ? null : Buffer.from(f[3]!, "base64").toString("utf8"),
      argv: entries.slice(split + 1),
    };
    if (!this.toolHandler) {
      return {
        exitCode: 127,
        stdout: "",
        stderr: `${call.tool}: no hook-tool handler on the host\n`,
      };
    }
    try {
      return await this.toolHandler(call);
    } catch (e) {
      return { exitCode: 126, stdout: "", stderr: `${call.tool}: host side failed: ${e}\n` };
    }
  }

  /** @internal Resolves with the guest's kernel release when the agent says READY. */
  ready(timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new GuestBootError(`no READY from the agent within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.onReady = (release) => {
        clearTimeout(timer);
        resolve(release);
      };
      this.deathListeners.push((why) => {
        clearTimeout(timer);
        reject(new GuestBootError(`the guest died before its agent was ready: ${why}`));
      });
    });
  }

  private handleLine(line: string): void {
    const fields = line.trim().split(" ");
    if (fields[0] === "READY") {
      this.release = fields[1] ?? "";
      this.onReady?.(this.release);
      this.onReady = undefined;
      return;
    }
    if (fields[0] !== "RESULT" || fields.length !== 5) {
      this.appendConsole(`[vm host] unexpected line on the command channel: ${line}\n`);
      return;
    }
    const id = Number(fields[1]);
    const pending = this.pending.get(id);
    if (!pending) return;
    this.pending.delete(id);
    clearTimeout(pending.timer);
    const decode = (f: string | undefined) =>
      !f || f === "-" ? "" : Buffer.from(f, "base64").toString("utf8");
    pending.resolve({
      exitCode: Number(fields[2]),
      stdout: decode(fields[3]),
      stderr: decode(fields[4]),
    });
  }

  private failAll(why: string): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error(`guest ${this.name}: ${why} while command ${id} was running`));
    }
    this.pending.clear();
    for (const listener of this.deathListeners.splice(0)) listener(why);
  }

  /** Adds a line of the host's own to the console log (marks phases of a test). */
  note(text: string): void {
    this.appendConsole(`\n[vm host] ${text}\n`);
  }

  private appendConsole(text: string): void {
    this.consoleChunks.push(text);
    this.consoleBytes += text.length;
    while (this.consoleBytes > CONSOLE_LIMIT && this.consoleChunks.length > 1) {
      const dropped = this.consoleChunks.shift() ?? "";
      this.consoleBytes -= dropped.length;
      this.droppedBytes += dropped.length;
    }
  }
}

function b64(text: string): string {
  return text === "" ? "-" : Buffer.from(text, "utf8").toString("base64");
}

/** Quotes a word for sh. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * Boots a guest and waits for its command runner. On failure the console is saved and the error
 * names the file.
 */
export async function bootGuest(opts: BootOptions): Promise<Guest> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "vmbed-"));
  const agentSocket = path.join(tmp, "agent.sock");
  const toolsSocket = path.join(tmp, "tools.sock");
  const listen = async (file: string) => {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(file, resolve);
    });
    return server;
  };
  const server = await listen(agentSocket);
  const toolsServer = await listen(toolsSocket);
  const args = qemuArgs({ ...opts, agentSocket, toolsSocket });
  const root = opts.root.kind === "disk" ? "Debian disk" : "bed initramfs";
  progress(`${opts.name}: booting (${root}, ${opts.topology.name} devices, IOMMU ${opts.iommu})`);
  const started = Date.now();
  const binary = opts.qemu?.binary ?? qemuBinary(opts.arch);
  if (opts.qemu) args.push(...opts.qemu.dataDirs.flatMap((dir) => ["-L", dir]));
  const env = opts.qemu ? { ...process.env, QEMU_MODULE_DIR: opts.qemu.moduleDir } : process.env;
  const qemu = spawn(binary, args, { stdio: ["pipe", "pipe", "pipe"], env });
  const guest = new Guest(opts.name, qemu, tmp);
  const spawnFailed = new Promise<never>((_, reject) =>
    qemu.once("error", (e) => reject(new GuestBootError(`cannot start QEMU: ${e.message}`))),
  );
  toolsServer.once("connection", (socket) => {
    toolsServer.close();
    guest.attachTools(socket);
  });
  try {
    const socket = await Promise.race([
      new Promise<net.Socket>((resolve) => server.once("connection", resolve)),
      spawnFailed,
      new Promise<never>((_, reject) =>
        qemu.once("exit", (code) =>
          reject(new GuestBootError(`QEMU exited (code ${code}) before connecting`)),
        ),
      ),
    ]);
    server.close();
    guest.attach(socket);
    await Promise.race([guest.ready(opts.bootTimeoutMs ?? 180_000), spawnFailed]);
    guest.bootMs = Date.now() - started;
    progress(`${opts.name}: booted in ${seconds(guest.bootMs)}`);
    if (opts.share) {
      // cache=none: the host reads what the guest wrote (and the reverse) at once.
      const q = shellQuote(opts.share);
      await guest.exec(
        `mkdir -p ${q} && mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=512000 vmbedshare ${q}`,
      );
    }
    return guest;
  } catch (e) {
    server.close();
    toolsServer.close();
    guest.note(`${binary} ${args.join(" ")}`);
    const file = guest.saveConsole(`boot failed: ${(e as Error).message}`);
    await guest.shutdown();
    throw new GuestBootError(`${(e as Error).message} (console: ${file})`);
  }
}
