// What the running kernel said: its boot id, and the records of its log (/dev/kmsg) that name a
// device. Read when a boot that should have made a PF's VFs did not (plan/sriov-boot.ts): the
// kernel logs why sriov_enable failed ("not enough MMIO resources for SR-IOV", "SR-IOV: bus
// number out of range", the driver's own refusal) while the write itself only returns an errno.
import { closeSync, constants, openForStream, readFileSync, readSync } from "./fs";
import { READ, under } from "./root";

/** The running boot's id (/proc/sys/kernel/random/boot_id); null when it cannot be read. */
export function readBootId(root: string): string | null {
  try {
    const id = readFileSync(under(root, READ.bootId), "utf8").trim();
    return id.length > 0 ? id : null;
  } catch {
    return null;
  }
}

/** At most this much of the log is read (the default ring buffer is 128 KiB to a few MiB). */
const MAX_BYTES = 16 * 1024 * 1024;

/**
 * The messages of the kernel log that contain any of `needles`, oldest first (at most `keep` per
 * needle). /dev/kmsg gives one record per read and EAGAIN at the end when opened non-blocking; a
 * regular file (a test root) reads in chunks. Records are `prio,seq,usec,flags;message` followed
 * by continuation lines (` KEY=value`), which are skipped. Null when the log cannot be read.
 */
export function readKernelMessages(
  root: string,
  needles: readonly string[],
  keep = 40,
): Map<string, string[]> | null {
  let fd: number;
  try {
    fd = openForStream(under(root, READ.kmsg), constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return null;
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    const buffer = Buffer.alloc(64 * 1024);
    while (total < MAX_BYTES) {
      let n: number;
      try {
        n = readSync(fd, buffer, 0, buffer.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "EAGAIN") break; // the end of the log
        if (code === "EPIPE") continue; // records overwritten while reading: go on with the next
        throw err;
      }
      if (n === 0) break;
      chunks.push(Buffer.from(buffer.subarray(0, n)));
      total += n;
    }
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
  const found = new Map<string, string[]>(needles.map((n) => [n, []]));
  for (const line of Buffer.concat(chunks).toString("utf8").split("\n")) {
    if (line.startsWith(" ")) continue;
    const semi = line.indexOf(";");
    const message = semi >= 0 && /^\d+,\d+,\d+/.test(line) ? line.slice(semi + 1) : line;
    for (const needle of needles) {
      if (!message.includes(needle)) continue;
      const list = found.get(needle)!;
      list.push(message.trim());
      if (list.length > keep) list.shift();
    }
  }
  return found;
}
