// A snapshot of a directory tree that also catches rewrites with identical bytes: inode, ctime and
// mtime change on every write, chmod and rename, so "0 files written" is checked, not assumed.
import * as fs from "node:fs";
import * as path from "node:path";

/** Path (relative) → kind, mode, size, inode, mtime, ctime (and link target). */
export function treeStat(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(path.join(root, r), { bigint: true });
      const common = `${st.mode.toString(8)} ${st.ino} ${st.mtimeNs} ${st.ctimeNs}`;
      if (st.isSymbolicLink()) out.set(r, `link ${fs.readlinkSync(path.join(root, r))} ${common}`);
      else if (st.isDirectory()) {
        out.set(r, `dir ${common}`);
        walk(r);
      } else out.set(r, `file ${st.size} ${common}`);
    }
  };
  walk("");
  return out;
}

/** Paths added (+), removed (-) or touched (~) between two treeStat snapshots. */
export function treeChanges(before: Map<string, string>, after: Map<string, string>): string[] {
  const lines: string[] = [];
  for (const [k, v] of after) {
    const b = before.get(k);
    if (b === undefined) lines.push(`+ ${k}`);
    else if (b !== v) lines.push(`~ ${k}`);
  }
  for (const k of before.keys()) if (!after.has(k)) lines.push(`- ${k}`);
  return lines.sort();
}

/** One string for the whole tree (equal strings: nothing was written, chmod-ed or renamed). */
export function treeFingerprint(root: string): string {
  return [...treeStat(root)].map(([k, v]) => `${k}\t${v}`).join("\n");
}
