import { describe, expect, it } from "vitest";
import {
  createSpawnRunner,
  type HookToolRunner,
  parsePrefetched,
  withPrefetched,
} from "../src/runner";

/** A runner that records what really ran and answers "real <argv>". */
function recording(): { runner: HookToolRunner; ran: string[] } {
  const ran: string[] = [];
  const runner: HookToolRunner = (argv) => {
    ran.push(argv.join(" "));
    return { exitCode: 0, stdout: `real ${argv.join(" ")}\n`, stderr: "" };
  };
  return { runner, ran };
}

const PIPED = 'config-get --format=json --all\t{"devices":""}\nstate-get --format=json\t{}\n';

describe("withPrefetched", () => {
  it("runs a long command line (a large action-set) without looking it up", () => {
    const { runner, ran } = recording();
    let reads = 0;
    const run = withPrefetched(runner, () => {
      reads++;
      return PIPED;
    });
    const argv = ["action-set", ...Array.from({ length: 20 }, (_, i) => `k${i}=v`)];
    expect(run(argv).stdout).toBe(`real ${argv.join(" ")}\n`);
    expect(reads).toBe(0);
    expect(run(["state-get", "--format=json"]).stdout).toBe("{}\n");
    expect(ran).toEqual([argv.join(" ")]);
  });

  it("says what the runner it wraps allows one exec to carry", () => {
    const { runner } = recording();
    expect(withPrefetched(runner, () => "").argvBudget).toBeUndefined();
    const real = createSpawnRunner({ PATH: "/usr/bin:/bin" });
    expect(real.argvBudget).toBeGreaterThan(64 * 1024);
    expect(withPrefetched(real, () => "").argvBudget).toBe(real.argvBudget);
  });

  it("answers the first call of each prefetched argv, then runs the tool for real", () => {
    const { runner, ran } = recording();
    let reads = 0;
    const run = withPrefetched(runner, () => {
      reads++;
      return PIPED;
    });
    expect(run(["config-get", "--format=json", "--all"]).stdout).toBe('{"devices":""}\n');
    expect(run(["state-get", "--format=json"]).stdout).toBe("{}\n");
    expect(ran).toEqual([]);
    // A second read may follow a write in between (state-set): it must see Juju, not the pipe.
    expect(run(["state-get", "--format=json"]).stdout).toBe("real state-get --format=json\n");
    expect(ran).toEqual(["state-get --format=json"]);
    expect(reads).toBe(1);
  });

  it("runs anything else: other flags, other tools, and every call that sends stdin", () => {
    const { runner, ran } = recording();
    const run = withPrefetched(runner, () => PIPED);
    run(["config-get", "--format=json"]);
    run(["status-set", "active"]);
    run(["state-get", "--format=json"], "input");
    expect(ran).toEqual([
      "config-get --format=json",
      "status-set active",
      "state-get --format=json",
    ]);
  });

  it("reads the pipe only when a tool is first called", () => {
    const { runner } = recording();
    let reads = 0;
    withPrefetched(runner, () => {
      reads++;
      return "";
    });
    expect(reads).toBe(0);
  });

  it("an empty or unreadable pipe changes nothing: every tool runs", () => {
    const { runner, ran } = recording();
    const run = withPrefetched(runner, () => "");
    run(["config-get", "--format=json", "--all"]);
    expect(ran).toEqual(["config-get --format=json --all"]);
  });
});

describe("parsePrefetched", () => {
  it("keeps the first well-formed line per argv and ignores the rest", () => {
    const parsed = parsePrefetched(
      [
        "config-get --format=json --all\t{}",
        "no tab here",
        "\tno argv",
        "config-get --format=json --all\t{'second': 1}",
        'state-get --format=json\t{"a":"b\\tc"}',
        "",
      ].join("\n"),
    );
    expect([...parsed]).toEqual([
      ["config-get --format=json --all", "{}"],
      ["state-get --format=json", '{"a":"b\\tc"}'],
    ]);
  });
});
