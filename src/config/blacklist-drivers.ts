// blacklist-drivers: the host drivers kept off the passed-through devices at boot.
import { isModuleName, isProtectedModule, normaliseModule } from "../module-name-vocabulary";
import { clip } from "../text";
import { isString } from "./option-values";
import type { BlacklistSetting, ConfigError } from "./types";

/** `blacklist-drivers`: "auto" (the planner picks), a list of module names, or "" (none). */
export function parseBlacklist(value: unknown, errors: ConfigError[]): BlacklistSetting | null {
  const option = "blacklist-drivers";
  if (!isString(option, value, errors, 'set it to "auto", a list of module names, or ""'))
    return null;
  const tokens = value.split(/[\s,]+/).filter((t) => t.length > 0);
  if (tokens.length === 0) return { mode: "list", modules: [] };
  if (tokens.length === 1 && tokens[0]!.toLowerCase() === "auto") return { mode: "auto" };
  const modules = new Set<string>();
  let ok = true;
  for (const token of tokens) {
    const fail = (problem: string, fix: string) => {
      errors.push({ option, value: clip(token), problem, fix });
      ok = false;
    };
    if (token.toLowerCase() === "auto") {
      fail(
        "cannot be combined with module names",
        'use "auto" alone, or list every module yourself',
      );
    } else if (!isModuleName(token)) {
      fail(
        "is not a kernel module name (lower-case letters, digits, _ and - only)",
        "use the name lsmod or `lspci -k` prints, e.g. nouveau",
      );
    } else if (isProtectedModule(token)) {
      fail(
        "is needed for passthrough itself (vfio) or by every PCIe port (pcieport)",
        "remove it from blacklist-drivers",
      );
    } else {
      modules.add(normaliseModule(token));
    }
  }
  return ok ? { mode: "list", modules: [...modules].sort() } : null;
}

// --- extra-kernel-params ----------------------------------------------------------------------
