// charmcraft.yaml against charmcraft 3's rules, as far as they can be read without charmcraft
// (canonical/charmcraft models/project.py, const.py): `bases:` only for the legacy releases,
// platforms in one of the two accepted shapes, metadata left in metadata.yaml, a build that
// installs the files scripts/charm-files.mjs lists with the Node.js major the charm ships.
// That the build's install really yields what `npm run pack` ships is checked on the packed charm
// (tests/integration/packed-charm.test.ts), where dist/ exists.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

const TOP = path.resolve(__dirname, "..", "..");
const read = (name: string) => fs.readFileSync(path.join(TOP, name), "utf8");

interface CharmFilesDescription {
  files: Array<{ to: string; kind: string; mode: number }>;
  runtimes: Record<string, { pkg: string; uname: string; version: string }>;
  channels: string[];
}
const described = (): CharmFilesDescription =>
  JSON.parse(
    execFileSync(process.execPath, [path.join(TOP, "scripts/charm-files.mjs"), "describe"], {
      encoding: "utf8",
    }),
  );

/** charmcraft's SUPPORTED_ARCHITECTURES (Debian names). */
const ARCHITECTURES = new Set(["amd64", "arm64", "armhf", "ppc64el", "riscv64", "s390x"]);
/** Keys charmcraft takes from metadata.yaml; with that file present they may not be repeated. */
const METADATA_KEYS = [
  "name",
  "summary",
  "description",
  "subordinate",
  "requires",
  "provides",
  "peers",
  "assumes",
  "containers",
  "resources",
  "storage",
  "devices",
  "extra-bindings",
  "terms",
];

type Yaml = Record<string, unknown>;

/** Every problem charmcraft 3 would raise for this project, in its words where it has them. */
function charmcraftProblems(
  project: Yaml,
  present: { metadata: boolean; config: boolean; actions: boolean },
): string[] {
  const problems: string[] = [];
  if (project.type !== "charm")
    problems.push(`field type cannot be ${JSON.stringify(project.type)}`);
  const legacy = (b: Yaml) =>
    (b.name === "ubuntu" && String(b.channel) < "24.04") ||
    (b.name === "centos" && String(b.channel) === "7") ||
    (b.name === "almalinux" && String(b.channel) === "9");
  if (project.bases !== undefined) {
    if (project.platforms !== undefined || project.base !== undefined)
      problems.push("bases cannot be combined with base/platforms");
    for (const entry of (project.bases as Yaml[]) ?? []) {
      const long = "name" in entry ? { "build-on": [entry], "run-on": [entry] } : entry;
      for (const b of [
        ...((long["build-on"] as Yaml[]) ?? []),
        ...((long["run-on"] as Yaml[]) ?? []),
      ])
        if (typeof b.channel !== "string") problems.push(`channel must be a string: ${b.channel}`);
        else if (!legacy(b))
          problems.push(`Base requires 'platforms' definition: ${b.name}@${b.channel}`);
    }
  } else {
    const platforms = project.platforms as Record<string, Yaml | null> | undefined;
    if (!platforms || Object.keys(platforms).length === 0)
      problems.push("Must define at least one platform.");
    for (const [name, value] of Object.entries(platforms ?? {})) {
      const multiBase = /^([a-z]+)@(\d+\.\d+):([a-z0-9]+)$/.exec(name);
      if (value === null) {
        if (multiBase) {
          if (!ARCHITECTURES.has(multiBase[3]!)) problems.push(`Invalid platform ${name}.`);
          if (project.base !== undefined)
            problems.push(`platform ${name} names its base: remove the top-level 'base'`);
        } else if (!ARCHITECTURES.has(name)) problems.push(`Invalid platform ${name}.`);
        else if (project.base === undefined)
          problems.push(`platform ${name} needs a top-level 'base' (ubuntu@24.04)`);
      } else {
        for (const key of ["build-on", "build-for"])
          if (value[key] === undefined) problems.push(`platform ${name}: ${key} is required`);
      }
    }
  }
  if (present.metadata)
    for (const key of METADATA_KEYS)
      if (key in project)
        problems.push(
          `Cannot specify metadata keys in charmcraft.yaml when metadata.yaml exists: ${key}`,
        );
  if (present.config && "config" in project)
    problems.push("'config' in charmcraft.yaml conflicts with config.yaml");
  if (present.actions && "actions" in project)
    problems.push("'actions' in charmcraft.yaml conflicts with actions.yaml");
  return problems;
}

const project = parse(read("charmcraft.yaml")) as Yaml;
const files = { metadata: true, config: true, actions: true };

describe("charmcraft.yaml", () => {
  it("is what charmcraft 3 accepts", () => {
    expect(charmcraftProblems(project, files)).toEqual([]);
  });

  it("the rules refuse what charmcraft 3 refuses (so the check above can fail)", () => {
    const old = {
      type: "charm",
      bases: [
        {
          "build-on": [{ name: "ubuntu", channel: "22.04" }],
          "run-on": [{ name: "ubuntu", channel: "24.04" }],
        },
      ],
    };
    expect(charmcraftProblems(old, files)).toEqual([
      "Base requires 'platforms' definition: ubuntu@24.04",
    ]);
    expect(charmcraftProblems({ type: "charm", platforms: { amd64: null } }, files)).toEqual([
      "platform amd64 needs a top-level 'base' (ubuntu@24.04)",
    ]);
    expect(
      charmcraftProblems({ type: "charm", platforms: { "ubuntu@24.04:x86_64": null } }, files),
    ).toEqual(["Invalid platform ubuntu@24.04:x86_64."]);
    expect(
      charmcraftProblems(
        { type: "charm", name: "x", platforms: { arm64: null }, base: "ubuntu@24.04" },
        files,
      ),
    ).toEqual(["Cannot specify metadata keys in charmcraft.yaml when metadata.yaml exists: name"]);
    expect(charmcraftProblems({ type: "charm" }, files)).toEqual([
      "Must define at least one platform.",
    ]);
  });

  it("runs on Ubuntu 22.04 and 24.04 for every architecture it names, each with a runtime", () => {
    const { runtimes, channels } = described();
    const names = Object.keys(project.platforms as Yaml);
    const archs = [...new Set(names.map((n) => n.split(":")[1]!))];
    expect(channels).toEqual(["22.04", "24.04"]);
    expect(archs).toContain("amd64");
    for (const arch of archs) {
      expect(runtimes[arch], `no Node.js runtime package for ${arch}`).toBeDefined();
      for (const channel of channels) expect(names).toContain(`ubuntu@${channel}:${arch}`);
    }
    expect(names.length).toBe(archs.length * channels.length);
  });

  it("builds with the Node.js major it ships, and installs the files of scripts/charm-files.mjs", () => {
    const { runtimes } = described();
    const parts = project.parts as Record<string, Yaml>;
    const charm = parts.charm!;
    const snaps = (charm["build-snaps"] as string[]).filter((s) => s.startsWith("node/"));
    expect(snaps).toHaveLength(1);
    const snapMajor = snaps[0]!.split("/")[1];
    for (const runtime of Object.values(runtimes))
      expect(snapMajor, `${runtime.pkg} ${runtime.version}`).toBe(runtime.version.split(".")[0]);
    const build = String(charm["override-build"]);
    expect(build).toMatch(
      /^node scripts\/charm-files\.mjs install "\$CRAFT_PART_INSTALL" "\$CRAFT_ARCH_BUILD_FOR"$/m,
    );
    // Without a prime filter everything installed is primed; with one, it must cover every file.
    for (const part of Object.values(parts)) {
      const prime = part.prime as string[] | undefined;
      if (prime === undefined) continue;
      for (const file of described().files.filter((f) => f.kind === "copy" || f.kind === "text"))
        expect(
          prime.some((p) => !p.startsWith("-") && (p === file.to || file.to.startsWith(`${p}/`))),
          `${file.to} is not primed`,
        ).toBe(true);
    }
  });
});

describe("references to README sections", () => {
  it('every `README, "Title"` in the charm\'s YAML files names a heading that exists', () => {
    const headings = new Set(
      read("README.md")
        .split("\n")
        .filter((l) => /^#+ /.test(l))
        .map((l) => l.replace(/^#+ /, "").trim()),
    );
    const refs: string[] = [];
    for (const file of ["charmcraft.yaml", "metadata.yaml", "config.yaml", "actions.yaml"]) {
      // A reference may wrap onto the next comment line: join comment lines first.
      const text = read(file).replace(/\n\s*#\s*/g, " ");
      for (const m of text.matchAll(/README,? "([^"]+)"/g)) refs.push(`${file}: ${m[1]}`);
    }
    expect(refs.length).toBeGreaterThan(0);
    const missing = refs.filter((r) => !headings.has(r.split(": ").slice(1).join(": ")));
    expect(missing).toEqual([]);
  });
});
