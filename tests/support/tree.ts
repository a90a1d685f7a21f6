// Snapshots of real directory trees, to prove "nothing else changed" and "restored byte for byte".
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export type TreeEntry =
  | { kind: "file"; mode: number; sha: string }
  | { kind: "dir"; mode: number }
  | { kind: "link"; target: string };

/** Every entry under `dir` (links not followed), keyed by path relative to `dir`. */
export function snapshotTree(
  dir: string,
  skip: (rel: string) => boolean = () => false,
): Map<string, TreeEntry> {
  const out = new Map<string, TreeEntry>();
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (skip(r)) continue;
      const full = path.join(dir, r);
      const st = fs.lstatSync(full);
      if (st.isSymbolicLink()) out.set(r, { kind: "link", target: fs.readlinkSync(full) });
      else if (st.isDirectory()) {
        out.set(r, { kind: "dir", mode: st.mode & 0o7777 });
        walk(r);
      } else {
        const sha = createHash("sha256").update(fs.readFileSync(full)).digest("hex");
        out.set(r, { kind: "file", mode: st.mode & 0o7777, sha });
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
