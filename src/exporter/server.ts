// The exporter's HTTP side: GET /metrics runs one scrape (collect.ts) and answers in Prometheus'
// text format, with the exporter's own health (scrape duration, errors) appended. node:http only.
import { createServer, type Server, type ServerResponse } from "node:http";
import { readStampedFile } from "../host/live-state";
import { EXPORTER_OWNED } from "../host/root";
import { EXPORTER_PLAN_COMMENT, type ExporterPlan } from "../plan/exporter-files";
import {
  GroupMembersCache,
  type HostReading,
  type LoadedPlan,
  PreparedPlan,
  readHost,
  ScrapeArrays,
} from "./collect";
import { ChunkBuffers, renderScrape } from "./render";
import { type MetricFamily, renderFamily, TEXT_CONTENT_TYPE } from "./text-format";

/** V8's full collection, when the runtime runs with --expose-gc (the unit file says so:
 * EXPORTER_NODE_FLAGS). */
const collectGarbage = (globalThis as { gc?: () => void }).gc;

/** The scrape loop's memory: the plan (read again only when its file changed) and counters. */
export class Exporter {
  private planStamp: string | null = null;
  private loaded: LoadedPlan = { plan: null, writtenAt: null, problem: "not read yet" };
  private prepared: PreparedPlan | null = null;
  private scrapes = 0;
  private errors = 0;
  private lastProblems: string[] = [];
  private readonly groups = new GroupMembersCache();
  private readonly buffers = new ChunkBuffers();
  /** The last scrape's arrays, once it is sent (null while a scrape uses them). */
  private spare: ScrapeArrays | null = null;

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
      this.prepared = null;
    } else if (file.text !== null) {
      this.planStamp = file.stamp;
      const parsed = parsePlan(file.text);
      this.prepared = parsed.plan ? new PreparedPlan(parsed.plan) : null;
      // The prepared plan keeps the functions in two strings: the parsed objects (10,000 of them,
      // and their strings) are let go.
      this.loaded = { ...parsed, plan: this.prepared?.plan ?? null, writtenAt: file.mtimeSeconds };
      if (this.loaded.problem) this.log(this.loaded.problem);
    }
    return this.loaded;
  }

  /** One scrape's exposition text, whole (tests; the server sends scrapeChunks as they come). */
  scrape(): string {
    return Buffer.concat([...this.scrapeChunks()]).toString();
  }

  /** One scrape: the host read now, then its exposition a chunk at a time. The scrape duration
   * counts reading and rendering, not the time the caller spends sending a chunk. */
  *scrapeChunks(): Generator<Buffer, void, void> {
    let spent = 0n;
    let resumed = process.hrtime.bigint();
    this.scrapes++;
    let reading: HostReading | null = null;
    let failed = false;
    // A scrape that starts while another is still sending makes its own arrays.
    let arrays = this.spare;
    this.spare = null;
    try {
      const before = this.prepared;
      const loaded = this.loadPlan();
      // A new plan: what parsing it made (at 10,000 functions, 10,000 objects and their strings)
      // is garbage now. One full collection gives it back before the scrape, so it does not set
      // the size of the heap every scrape after works in (3 MiB at 10,000 functions).
      if (this.prepared !== before) collectGarbage?.();
      const n = this.prepared?.count ?? 0;
      if (arrays === null || arrays.capacity < n) arrays = new ScrapeArrays(n);
      reading = readHost(this.root, loaded, this.prepared, this.groups, arrays);
      const messages = reading.problems.map((p) => p.message);
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
    const scrapes = this.scrapes;
    const errors = this.errors;
    const tail = (): MetricFamily[] => [
      {
        name: "pci_passthrough_exporter_scrapes_total",
        help: "Scrapes the exporter answered since it started.",
        type: "counter",
        samples: [{ value: scrapes }],
      },
      {
        name: "pci_passthrough_exporter_scrape_errors_total",
        help: "Scrapes that could not read part of the host (the exporter's journal names the path) or failed.",
        type: "counter",
        samples: [{ value: errors }],
      },
      {
        name: "pci_passthrough_exporter_scrape_duration_seconds",
        help: "How long this scrape took to read the host and compare it with the plan.",
        type: "gauge",
        samples: [{ value: Number(spent + process.hrtime.bigint() - resumed) / 1e9 }],
      },
    ];
    try {
      if (reading === null) {
        for (const family of tail()) yield Buffer.from(renderFamily(family));
        return;
      }
      for (const chunk of renderScrape(reading, tail, this.buffers)) {
        spent += process.hrtime.bigint() - resumed;
        yield chunk;
        resumed = process.hrtime.bigint();
      }
    } finally {
      this.spare = arrays;
    }
  }

  /** An HTTP server answering /metrics (and a pointer to it on /). */
  server(): Server {
    return createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { Allow: "GET, HEAD" }).end();
      } else if (path === "/metrics" && req.method === "HEAD") {
        // The headers a scrape would have: no need to read the host for them.
        res.writeHead(200, { "Content-Type": TEXT_CONTENT_TYPE }).end();
      } else if (path === "/metrics") {
        res.writeHead(200, { "Content-Type": TEXT_CONTENT_TYPE });
        send(res, this.scrapeChunks(), this.buffers);
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

/** Chunks a response may have written and not yet seen written: the next one is made only then,
 * so a scrape holds a few chunk buffers, reused, whether the reader is slow or the kernel takes
 * every write at once (then the loop below would make all of them before any write finished). */
const IN_FLIGHT = 2;

/** Writes the chunks as the socket takes them; a chunk's buffer goes back to `buffers` once
 * written. */
function send(
  res: ServerResponse,
  chunks: Generator<Buffer, void, void>,
  buffers: ChunkBuffers,
): void {
  let inFlight = 0;
  let waiting = false;
  const pump = (): void => {
    for (;;) {
      if (res.destroyed) {
        chunks.return();
        return;
      }
      if (inFlight >= IN_FLIGHT) {
        waiting = true;
        return;
      }
      const next = chunks.next();
      if (next.done) {
        res.end();
        return;
      }
      const chunk = next.value;
      inFlight++;
      res.write(chunk, () => {
        buffers.give(chunk);
        inFlight--;
        if (waiting) {
          waiting = false;
          pump();
        }
      });
    }
  };
  res.once("close", () => chunks.return());
  pump();
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
