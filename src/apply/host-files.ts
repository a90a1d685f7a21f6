// Applies a HostPlan's files to the host and regenerates grub / the initramfs only when their
// inputs really changed. It decides nothing about *what* to write (that is plan/); it only makes the
// host match, refuses to overwrite what is not ours, and reports exactly what it did.
import { NOT_FOUND_EXIT } from "ops-ts-shim";
import { EXPORTER_OWNED, OWNED, OWNED_DIRS, SHARED } from "../host/root";
import type { FileSpec, HostPlan, Regenerate } from "../plan/types";
import {
  CommandError,
  type CommandResult,
  type CommandRunner,
  onPath,
  REGENERATE,
} from "./commands";
import {
  ensureFile,
  type FileAction,
  type FsOps,
  readHostFile,
  realFs,
  removeEmptyDir,
  removeFile,
} from "./files";

/** What the charm remembers between hooks (Juju stored state) about the files it manages. */
export interface FilesState {
  /** Host path → fingerprint of the bytes the charm last wrote there. */
  written: Record<string, string>;
  /** Regeneration → fingerprint of its inputs when it last ran successfully. */
  regenerated: Partial<Record<Regenerate, string>>;
  /** Regeneration → fingerprint of its inputs when its program was not on the host (no grub:
   * systemd-boot, some ARM and cloud images). Absent in what older charm versions stored. */
  notFound?: Partial<Record<Regenerate, string>>;
}

export const EMPTY_FILES_STATE: FilesState = { written: {}, regenerated: {} };

export interface ApplyDeps {
  root: string;
  runner: CommandRunner;
  fs?: FsOps;
  /** Package name written to reboot-required.pkgs. */
  packageName?: string;
  /** Whether a program is on the host now (default: on PATH, as the runner's spawn finds it). */
  hasProgram?: (program: string) => boolean;
}

/** A regeneration whose command failed: its files are in place, and it runs again on the next
 * hook (its inputs are not recorded as regenerated) until it succeeds. */
export interface FailedRegeneration {
  kind: Regenerate;
  argv: string[];
  result: CommandResult;
  /** One line for logs and the status: the command, its exit code, the end of what it printed. */
  message: string;
  /** Not run at this hook: an earlier hook did not find the program for these same inputs, and
   * it is still not on the host (the result repeats that finding). */
  remembered?: boolean;
}

export interface ApplyReport {
  /** `kept`: an edited file the plan no longer needs, left as the operator made it. */
  files: { path: string; action: FileAction | "kept" }[];
  /** Commands that ran and succeeded, in order. */
  ran: string[][];
  /** Commands the runner did not run (a sandbox root): recorded as done, never logged as run. */
  skipped: string[][];
  /** Commands that ran and failed (a full /boot) or were not found (no grub on this host). */
  failed: FailedRegeneration[];
  regenerated: Regenerate[];
  state: FilesState;
}

/** A file at one of our paths that we did not write, or that someone edited since we did. */
export class NotOursError extends Error {
  constructor(
    readonly hostPath: string,
    readonly kind: "foreign" | "edited",
  ) {
    super(
      kind === "foreign"
        ? `${hostPath} exists and was not written by this charm; it was left untouched. ` +
            "Move it elsewhere (or delete it) and the charm writes its own on the next hook."
        : `${hostPath} was edited since the charm wrote it; the edit was kept and nothing was ` +
            "written. Move your change to a file of your own, delete this one, and the charm " +
            "rewrites it on the next hook.",
    );
    this.name = "NotOursError";
  }
}

/** Tells our last write from anything else at that path: an operator's edit, a package's file.
 * Nobody forges these, so a 53-bit non-cryptographic hash plus the length does it (cyrb53, public
 * domain, by bryc). Loading node:crypto, or node:zlib for its crc32, would cost every hook on every
 * compute host several milliseconds before it hashed a byte (see bench/RESULTS.md). */
export function fingerprint(content: Buffer | string): string {
  const bytes = typeof content === "string" ? Buffer.from(content, "utf8") : content;
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < bytes.length; i++) {
    // An index loop, not for-of: this runs cold on every hook, where iterators are slow.
    const byte = bytes[i]!;
    h1 = Math.imul(h1 ^ byte, 2654435761);
    h2 = Math.imul(h2 ^ byte, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  const hash = 4294967296 * (2097151 & h2) + (h1 >>> 0);
  return `cyrb53:${hash.toString(16).padStart(14, "0")}:${bytes.length}`;
}

/** The marker every owned file carries in its header (see plan/ renderers). */
const MANAGED = /managed by the pci-passthrough (juju )?charm/i;

/** Makes the owned files match `plan.files` (absent when not listed) and runs the regenerations
 * whose inputs changed. Checks every path first, so a refusal writes nothing at all. */
export function applyHostFiles(
  plan: Pick<HostPlan, "files" | "feeds">,
  previous: FilesState,
  deps: ApplyDeps,
): ApplyReport {
  const fs = deps.fs ?? realFs;
  const wanted = new Map(plan.files.map((f) => [f.path, f]));
  const managed = [
    ...new Set([...Object.values(OWNED), ...Object.values(EXPORTER_OWNED), ...wanted.keys()]),
  ].sort();

  // Classify every managed path before touching any, so a refusal writes nothing at all.
  const present = new Map<string, "ours" | "foreign" | "edited">();
  // What each path holds now, read once: the classification and ensureFile both use it.
  const contents = new Map<string, Buffer | null>();
  for (const hostPath of managed) {
    const bytes = readHostFile(deps.root, hostPath, fs);
    contents.set(hostPath, bytes);
    if (bytes === null) continue;
    const recorded = previous.written[hostPath];
    const kind =
      recorded === undefined
        ? // Not in our records: ours only if it carries our header (stored state lost on redeploy).
          MANAGED.test(bytes.subarray(0, 512).toString("utf8"))
          ? "ours"
          : "foreign"
        : recorded === fingerprint(bytes)
          ? "ours"
          : "edited";
    present.set(hostPath, kind);
    const spec = wanted.get(hostPath);
    if (spec && kind !== "ours" && spec.content !== bytes.toString("utf8")) {
      throw new NotOursError(hostPath, kind);
    }
  }

  const written: Record<string, string> = {};
  const files: ApplyReport["files"] = [];
  for (const hostPath of managed) {
    const spec = wanted.get(hostPath);
    const kind = present.get(hostPath);
    if (spec) {
      files.push({
        path: hostPath,
        action: ensureFile(deps.root, spec, fs, contents.get(hostPath)),
      });
      written[hostPath] = fingerprint(spec.content);
    } else if (kind === "ours") {
      files.push({ path: hostPath, action: removeFile(deps.root, hostPath, fs) });
    } else if (kind === "edited") {
      // Not needed any more, but someone changed it: their bytes are kept (removal included).
      files.push({ path: hostPath, action: "kept" });
    }
    // A foreign file at a path we do not need is simply not ours: left alone, not reported.
  }

  for (const dir of OWNED_DIRS) {
    if (plan.files.some((f) => f.path.startsWith(`${dir}/`))) continue;
    const action = removeEmptyDir(deps.root, dir, fs);
    if (action === "removed") files.push({ path: dir, action });
  }

  const regeneratedState = { ...previous.regenerated };
  const notFound: Partial<Record<Regenerate, string>> = {};
  const ran: string[][] = [];
  const skipped: string[][] = [];
  const failed: FailedRegeneration[] = [];
  const regenerated: Regenerate[] = [];
  const hasProgram = deps.hasProgram ?? ((program: string) => onPath(program));
  for (const kind of ["initramfs", "grub"] as const) {
    const inputs = inputsHash(plan, kind);
    if ((previous.regenerated[kind] ?? inputsHash({ files: [], feeds: {} }, kind)) === inputs) {
      continue;
    }
    const argv = [...REGENERATE[kind]];
    if (previous.notFound?.[kind] === inputs && !hasProgram(argv[0]!)) {
      // Not on the host at an earlier hook, for these same inputs, and still not: running it
      // again would change nothing (a hook with nothing to change runs nothing). It runs once
      // the program appears (grub installed) or the inputs change.
      const result = { exitCode: NOT_FOUND_EXIT, stdout: "", stderr: `${argv[0]}: not found` };
      failed.push({ kind, argv, result, message: notFoundMessage(argv), remembered: true });
      notFound[kind] = inputs;
      continue;
    }
    const result = deps.runner(argv);
    if (result.exitCode !== 0) {
      // Not thrown: a hook error would make Juju drop the stored state, and the next hook would
      // take the files just written for an operator's edit. The files stay, the state records
      // them, and the regeneration is tried again on every hook until it works.
      const missing = result.exitCode === NOT_FOUND_EXIT;
      if (missing) notFound[kind] = inputs;
      const message = missing ? notFoundMessage(argv) : new CommandError(argv, result).message;
      failed.push({ kind, argv, result, message });
      continue;
    }
    (result.skipped ? skipped : ran).push(argv);
    regenerated.push(kind);
    regeneratedState[kind] = inputs;
  }
  // One key order whatever ran when, so equal states serialise equally (stored-state compares).
  const ordered = (record: Partial<Record<Regenerate, string>>) =>
    Object.fromEntries(
      (["initramfs", "grub"] as const)
        .filter((k) => record[k] !== undefined)
        .map((k) => [k, record[k]]),
    );
  const state: FilesState = { written, regenerated: ordered(regeneratedState) };
  if (Object.keys(notFound).length > 0) state.notFound = ordered(notFound);
  if (regenerated.length > 0)
    markRebootRequired(deps.root, deps.packageName ?? "pci-passthrough", fs);
  return { files, ran, skipped, failed, regenerated, state };
}

/** What a hook says of a regeneration whose program is not on the host. */
function notFoundMessage(argv: string[]): string {
  return `\`${argv.join(" ")}\` was not run: ${argv[0]} is not on this host (not found on PATH)`;
}

/** A fingerprint of everything that feeds one regeneration (path, mode and bytes of each file). */
function inputsHash(plan: Pick<HostPlan, "files" | "feeds">, kind: Regenerate): string {
  const inputs = plan.files
    .filter((f: FileSpec) => plan.feeds[f.path]?.includes(kind))
    // Plain code-unit order: localeCompare would load ICU (~10 ms) on every hook.
    .sort((a, b) => (a.path < b.path ? -1 : 1))
    .map((f) => `${f.path}\0${f.mode.toString(8)}\0${f.content}`);
  return fingerprint(inputs.join("\0\0"));
}

/** Ubuntu's convention (update-notifier, motd, landscape): the file says a reboot is needed and
 * the .pkgs file lists who asked. We add our line once and never remove others'. */
function markRebootRequired(root: string, packageName: string, fs: FsOps): void {
  ensureFile(
    root,
    { path: SHARED.rebootRequired, content: "*** System restart required ***\n", mode: 0o644 },
    fs,
  );
  const current = readHostFile(root, SHARED.rebootRequiredPkgs, fs)?.toString("utf8") ?? "";
  const lines = current.split("\n").filter(Boolean);
  if (!lines.includes(packageName)) {
    ensureFile(
      root,
      {
        path: SHARED.rebootRequiredPkgs,
        content: [...lines, packageName].map((l) => `${l}\n`).join(""),
        mode: 0o644,
      },
      fs,
    );
  }
}
