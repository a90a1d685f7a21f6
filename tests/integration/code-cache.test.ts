// The hooks' V8 code cache (scripts/build.mjs, writeCachedLoader): dist/charm.js compiles
// dist/charm.code.js with a cache taken after a run, kept in the charm's .node-compile-cache. A
// stale or broken cache must never run: the name carries the bundle's digest, and V8 refuses
// anything else, after which the loader writes a good one.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { deployPackedCharm } from "../support/charm-process";
import { useCleanups } from "../support/cleanups";
import { makeTempHost } from "../support/hosts/build-host";
import { seedHost } from "../support/hosts/presets";

const cleanups = useCleanups();

function deploy() {
  const host = makeTempHost(seedHost());
  const unit = deployPackedCharm(host.root, { config: { devices: "0000:83:00.0" } });
  cleanups.push(() => {
    unit.cleanup();
    host.cleanup();
  });
  const cacheDir = path.join(unit.charmDir, ".node-compile-cache");
  const digest = createHash("sha256")
    .update(fs.readFileSync(path.join(unit.charmDir, "dist", "charm.code.js")))
    .digest("hex")
    .slice(0, 16);
  const cache = path.join(cacheDir, `charm.code-${digest}.v8`);
  const hook = (event: "install" | "update-status" | "config-changed") => {
    const r = unit.dispatch(event);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
  };
  const caches = () => fs.readdirSync(cacheDir).filter((f) => f.startsWith("charm.code-"));
  const stamp = () => {
    const s = fs.statSync(cache);
    return `${s.ino}:${s.mtimeMs}`;
  };
  return { unit, cache, hook, caches, stamp, cacheDir };
}

describe("the hooks' code cache", () => {
  it("is written by the first hook, named by the bundle's digest, and only read after", () => {
    const { cache, hook, caches, stamp } = deploy();
    hook("install");
    expect(caches()).toEqual([path.basename(cache)]);
    const first = stamp();
    hook("update-status");
    hook("config-changed");
    expect(stamp()).toBe(first);
  });

  it("of another bundle is removed, and this bundle's written", () => {
    const { cache, hook, caches, cacheDir } = deploy();
    hook("install");
    fs.rmSync(cache);
    const old = path.join(cacheDir, "charm.code-0123456789abcdef.v8");
    fs.writeFileSync(old, "an older charm's cache");
    hook("update-status");
    expect(caches()).toEqual([path.basename(cache)]);
  });

  it("that V8 refuses (broken, or of another V8) changes nothing the hook does, and is rewritten", () => {
    const { unit, cache, hook, stamp } = deploy();
    hook("install");
    unit.clearCommands();
    const good = fs.readFileSync(cache);
    fs.writeFileSync(cache, Buffer.alloc(good.length, 0x5a));
    const before = stamp();
    const r = unit.dispatch("update-status");
    expect(r.exitCode, r.stderr).toBe(0);
    expect(stamp()).not.toBe(before);
    expect(fs.readFileSync(cache).equals(Buffer.alloc(good.length, 0x5a))).toBe(false);
    // Still a no-op: nothing on the host changed and the next hook reads the new cache.
    expect(unit.commands()).toEqual([]);
    const after = stamp();
    hook("update-status");
    expect(stamp()).toBe(after);
  });
});
