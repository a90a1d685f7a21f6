// Snapshots of real directory trees, to prove "nothing else changed", "restored byte for byte"
// and (with stamps) "nothing was even rewritten". The one tree walker of the tests and benchmarks.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export type TreeEntry =
  | { kind: "file"; mode: number; sha: string; stamp?: string }
  | { kind: "dir"; mode: number; stamp?: string }
  | { kind: "link"; target: string; stamp?: string };

export interface SnapshotOptions {
  /** Paths (relative to the snapshot's dir) left out, with everything under them. */
  skip?: (rel: string) => boolean;
  /** Also record inode, mtime and ctime: a rewrite with the same bytes, a chmod to the same mode
   * or a rename onto an equal file then shows as a change ("0 files written" checked, not assumed). */
  stamps?: boolean;
}

/** Every entry under `dir` (links not followed), keyed by path relative to `dir`. */
export function snapshotTree(dir: string, options: SnapshotOptions = {}): Map<string, TreeEntry> {
  const { skip = () => false, stamps = false } = options;
  const out = new Map<string, TreeEntry>();
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (skip(r)) continue;
      const full = path.join(dir, r);
      const st = fs.lstatSync(full, { bigint: true });
      const stamp = stamps ? { stamp: `${st.ino} ${st.mtimeNs} ${st.ctimeNs}` } : {};
      const mode = Number(st.mode & 0o7777n);
      if (st.isSymbolicLink())
        out.set(r, { kind: "link", target: fs.readlinkSync(full), ...stamp });
      else if (st.isDirectory()) {
        out.set(r, { kind: "dir", mode, ...stamp });
        walk(r);
      } else {
        const sha = createHash("sha256").update(fs.readFileSync(full)).digest("hex");
        out.set(r, { kind: "file", mode, sha, ...stamp });
      }
    }
  };
  walk("");
  return out;
}

/** The differences between two snapshots, as readable lines ("+ etc/x", "- etc/y", "~ etc/z"). */
export function diffTrees(before: Map<string, TreeEntry>, after: Map<string, TreeEntry>): string[] {
  const lines: string[] = [];
  for (const [k, v] of after) {
    const b = before.get(k);
    if (!b) lines.push(`+ ${k}`);
    else if (JSON.stringify(b) !== JSON.stringify(v)) lines.push(`~ ${k}`);
  }
  for (const k of before.keys()) if (!after.has(k)) lines.push(`- ${k}`);
  return lines.sort();
}

/** A fresh temp directory removed by the returned cleanup. */
export function tempDir(prefix = "pci-pt-"): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Writes files from an object literal: { "/etc/default/grub": "GRUB_…" } under `root`. */
export function writeTree(
  root: string,
  files: Record<string, string | { content: string; mode: number }>,
): void {
  for (const [p, v] of Object.entries(files)) {
    const full = path.join(root, p);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    const { content, mode } = typeof v === "string" ? { content: v, mode: 0o644 } : v;
    fs.writeFileSync(full, content, { mode });
    fs.chmodSync(full, mode);
  }
}

/** The text of `hostPath` under the tree at `root`; "" when there is no such file. */
export function fileText(root: string, hostPath: string): string {
  const file = path.join(root, hostPath);
  return fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
}
