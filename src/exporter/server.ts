// The exporter's HTTP side: GET /metrics runs one scrape (collect.ts) and answers in Prometheus'
// text format, with the exporter's own health (scrape duration, errors) appended. node:http only.
import { createServer, type Server } from "node:http";
import { readStampedFile } from "../host/live-state";
import { EXPORTER_OWNED } from "../host/root";
import { EXPORTER_PLAN_COMMENT, type ExporterPlan } from "../plan/exporter-files";
import { collect, GroupMembersCache, type LoadedPlan } from "./collect";
import { type MetricFamily, renderFamily, renderText, TEXT_CONTENT_TYPE } from "./text-format";

/** The scrape loop's memory: the plan (read again only when its file changed) and counters. */
export class Exporter {
  private planStamp: string | null = null;
  private loaded: LoadedPlan = { plan: null, writtenAt: null, problem: "not read yet" };
  private scrapes = 0;
  private errors = 0;
  private lastProblems: string[] = [];
  private readonly groups = new GroupMembersCache();

  constructor(
    readonly root: string,
    private readonly log: (message: string) => void = () => {},
  ) {}

  /** The plan as of now: the file read again when its stamp moved. */
  loadPlan(): LoadedPlan {
    const file = readStampedFile(this.root, EXPORTER_OWNED.plan, this.planStamp);
    if (file === null) {
      this.planStamp = null;
      this.loaded = {
        plan: null,
        writtenAt: null,
        problem: `${EXPORTER_OWNED.plan} is not there`,
      };
    } else if (file.text !== null) {
      this.planStamp = file.stamp;
      this.loaded = { ...parsePlan(file.text), writtenAt: file.mtimeSeconds };
      if (this.loaded.problem) this.log(this.loaded.problem);
    }
    return this.loaded;
  }

  /** One scrape's exposition text. */
  scrape(): string {
    return renderText(this.scrapeFamilies());
  }

  /** One scrape's metric families (the server writes them one by one: no 5 MB string at 10,000
   * functions). */
  scrapeFamilies(): MetricFamily[] {
    const started = process.hrtime.bigint();
    this.scrapes++;
    let families: MetricFamily[] = [];
    let failed = false;
    try {
      const result = collect(this.root, this.loadPlan(), this.groups);
      families = result.families;
      const messages = result.problems.map((p) => p.message);
      if (messages.length > 0) {
        failed = true;
        // Said once per change, not at every scrape.
        if (messages.join("\n") !== this.lastProblems.join("\n")) {
          for (const m of messages) this.log(m);
        }
      }
      this.lastProblems = messages;
    } catch (error) {
      failed = true;
      this.log(`scrape failed: ${(error as Error).stack ?? String(error)}`);
    }
    if (failed) this.errors++;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    families.push(
      {
        name: "pci_passthrough_exporter_scrapes_total",
        help: "Scrapes the exporter answered since it started.",
        type: "counter",
        samples: [{ value: this.scrapes }],
      },
      {
        name: "pci_passthrough_exporter_scrape_errors_total",
        help: "Scrapes that could not read part of the host (the exporter's journal names the path) or failed.",
        type: "counter",
        samples: [{ value: this.errors }],
      },
      {
        name: "pci_passthrough_exporter_scrape_duration_seconds",
        help: "How long this scrape took to read the host and compare it with the plan.",
        type: "gauge",
        samples: [{ value: seconds }],
      },
    );
    return families;
  }

  /** An HTTP server answering /metrics (and a pointer to it on /). */
  server(): Server {
    return createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { Allow: "GET, HEAD" }).end();
      } else if (path === "/metrics") {
        const families = this.scrapeFamilies();
        res.writeHead(200, { "Content-Type": TEXT_CONTENT_TYPE });
        for (const family of families) res.write(renderFamily(family));
        res.end();
      } else if (path === "/") {
        res
          .writeHead(200, { "Content-Type": "text/plain; charset=utf-8" })
          .end("pci-passthrough exporter: metrics at /metrics\n");
      } else {
        res.writeHead(404).end();
      }
    });
  }
}

/** The plan file's JSON, checked for the fields a scrape uses. */
export function parsePlan(text: string): Omit<LoadedPlan, "writtenAt"> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return {
      plan: null,
      problem: `${EXPORTER_OWNED.plan} is not JSON: ${(error as Error).message}`,
    };
  }
  const plan = value as Partial<ExporterPlan> | null;
  if (
    !plan ||
    plan.comment !== EXPORTER_PLAN_COMMENT ||
    plan.version !== 1 ||
    !Array.isArray(plan.kernelParams) ||
    !Array.isArray(plan.functions) ||
    !Array.isArray(plan.pfs) ||
    !Array.isArray(plan.withheld)
  ) {
    return {
      plan: null,
      problem: `${EXPORTER_OWNED.plan} is not a plan this exporter knows (version 1); the charm's next hook rewrites it`,
    };
  }
  return { plan: plan as ExporterPlan, problem: null };
}
