// Says cheaply whether a big file the charm consults on every hook changed since it last read it.
// The tools that own these files (dpkg for its status, depmod for modules.alias) write a new file
// and rename it over the old one, so its inode, size and mtime change with every change: a stat
// instead of reading and parsing megabytes on each hook of each compute host.
import { statSync } from "./fs";
import { under } from "./root";

/** `<host path>:<inode>:<size>:<mtime ms>`; null when the file cannot be stat'ed. */
export function fileStamp(root: string, hostPath: string): string | null {
  try {
    const st = statSync(under(root, hostPath));
    return `${hostPath}:${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return null;
  }
}
