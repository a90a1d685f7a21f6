// Event wiring only: which Juju event does what. The work lives in host-preparation.ts (hooks),
// nova-relation.ts (the relation to nova-compute) and charm-actions.ts (juju run).
import {
  type ActionEvent,
  ActiveStatus,
  BlockedStatus,
  CharmBase,
  type Framework,
  MaintenanceStatus,
  type RelationEvent,
  type StatusBase,
  WaitingStatus,
} from "ops-ts-shim";
// Swapped for a stub in dist/charm.js, the hooks' bundle (scripts/build.mjs): see actionCode.
import * as actions from "./charm-actions";
import { parseExporterPort } from "./config/exporter-port";
import { COS_AGENT_ENDPOINT } from "./cos/cos-agent-data";
import { COS_RELATED_KEY, cosAgentConfigValue, publishCosAgent } from "./cos-agent-relation";
import { type FleetTrigger, publishOffer, updateFleet } from "./fleet-relation";
import {
  loadMemory,
  type PreparationDeps,
  type PreparationMemory,
  type PreparationResult,
  prepareHost,
  restoreHost,
} from "./host-preparation";
import { handleReboot } from "./host-reboot";
import {
  clearNovaRelations,
  NOVA_ENDPOINT,
  novaReleaseFor,
  placementWanted,
  publishNova,
} from "./nova-relation";
import { FLEET_ENDPOINT, type HostOffer, summaryConflictStatus } from "./plan/fleet";
import { novaFeatures } from "./plan/nova";
import { rebootStatus } from "./plan/reboot";
import { sriovReady } from "./plan/sriov";
import { statusFor, type UnitStatus } from "./plan/status";
import { runtimeEnv } from "./runtime-env";

const CONTAINER_ENDPOINTS = [NOVA_ENDPOINT, "juju-info"];
/** Stored-state key (leader): its fleet status line (alias conflicts), null when none. */
const FLEET_STATUS_KEY = "fleet-status";
/** Stored-state key of PreparationMemory. */
const MEMORY_KEY = "preparation";
/** Stored-state key of the digest of the warnings the last reconcile logged: a warning about the
 * host (an unreadable attribute, a container) is said when it changes, not at every update-status
 * (each juju-log is a process Juju starts, and the same line every five minutes buries news). */
const WARNED_KEY = "warned";

/** Hooks after which the host must match the config (all idempotent: a no-op writes nothing). */
const RECONCILE_EVENTS = [
  "install",
  "start",
  "config-changed",
  "upgrade-charm",
  "update-status",
  "leader-elected",
  "juju-info-relation-joined",
  `${NOVA_ENDPOINT}-relation-created`,
  `${NOVA_ENDPOINT}-relation-joined`,
  `${NOVA_ENDPOINT}-relation-changed`,
  // The peer relation appears (first unit, or upgrade-charm to a revision that has it).
  `${FLEET_ENDPOINT}-relation-created`,
] as const;

/** Hooks after which the cos-agent databag is published again (the library's provider refreshes
 * on relation joined/changed and config-changed; upgrade-charm brings new rules and dashboard). */
const COS_PUBLISH_EVENTS = new Set<string>([
  "config-changed",
  "upgrade-charm",
  `${COS_AGENT_ENDPOINT}-relation-joined`,
  `${COS_AGENT_ENDPOINT}-relation-changed`,
]);

export class PciPassthroughCharm extends CharmBase {
  /** What this dispatch found; null when it did not look (actions, unrelated hooks). */
  private status: UnitStatus | null = null;
  /** The leader's word on the fleet (alias conflicts), beside the host's own status. */
  private fleetStatus: string | null = null;

  constructor(framework: Framework) {
    super(framework);
    for (const event of RECONCILE_EVENTS) {
      // A new leader (or a new charm) gathers every host again; other hooks add only its own.
      const trigger: FleetTrigger | null =
        event === "leader-elected" ||
        event === "upgrade-charm" ||
        event === `${FLEET_ENDPOINT}-relation-created`
          ? { kind: "rebuild" }
          : null;
      framework.observe(event, () => this.reconcile(event, trigger));
    }
    // A peer's offer changed or it left: only the leader merges (one relation-get per change);
    // the others need nothing (nova-config reads the fleet when asked).
    framework.observe(`${FLEET_ENDPOINT}-relation-changed`, (e) => {
      if (e.remoteUnit && this.model.isLeader())
        this.reconcile(e.name, { kind: "changed", unit: e.remoteUnit });
      // The leader's application bag changed: the reboot lock may now be this unit's
      // (reboot=when-idle only: with manual nothing here waits for it).
      else if (!e.remoteUnit && rebootWhenIdle(this.model.config())) this.reconcile(e.name);
    });
    framework.observe(`${FLEET_ENDPOINT}-relation-departed`, (e) => {
      const unit = e.departingUnit ?? e.remoteUnit;
      if (unit && this.model.isLeader()) this.reconcile(e.name, { kind: "departed", unit });
    });
    // Relating to the agent installs the exporter (and the last relation gone removes it).
    for (const event of [
      `${COS_AGENT_ENDPOINT}-relation-created`,
      `${COS_AGENT_ENDPOINT}-relation-joined`,
      `${COS_AGENT_ENDPOINT}-relation-changed`,
    ] as const) {
      framework.observe(event, () => {
        this.model.stored.set(COS_RELATED_KEY, true);
        this.reconcile(event);
      });
    }
    framework.observe(`${COS_AGENT_ENDPOINT}-relation-broken`, (e) => {
      const others = this.model.relations(COS_AGENT_ENDPOINT).filter((r) => r.id !== e.relationId);
      if (others.length === 0) this.model.stored.delete(COS_RELATED_KEY);
      this.reconcile(e.name);
    });
    framework.observe(`${NOVA_ENDPOINT}-relation-departed`, (e) => this.onNovaLeaving(e));
    framework.observe(`${NOVA_ENDPOINT}-relation-broken`, (e) => this.onContainerBroken(e));
    framework.observe("juju-info-relation-broken", (e) => this.onContainerBroken(e));
    framework.observe("stop", () => this.removeFromHost());
    framework.observe("remove", () => this.removeFromHost());
    for (const action of [
      "list-devices",
      "verify-iommu",
      "rebind",
      "nova-config",
      "sriov-vfs",
      "reboot-plan",
    ] as const) {
      framework.observe(`${action}-action`, (e: ActionEvent) =>
        actionCode().runActionHandler(action, e, this.actionContext()),
      );
    }
    framework.observe("collect-unit-status", (e) => {
      if (this.status) e.addStatus(toShimStatus(this.status));
      if (this.status && this.fleetStatus) e.addStatus(new BlockedStatus(this.fleetStatus));
    });
  }

  /** With `warnings`, WARNING lines are collected there instead of logged (sayChangedWarnings). */
  private deps(warnings?: string[]): PreparationDeps {
    const log = (level: "DEBUG" | "INFO" | "WARNING" | "ERROR", message: string) => {
      if (level === "WARNING" && warnings) warnings.push(message);
      else this.model.log(level, message);
    };
    const env = runtimeEnv((m) => log("INFO", m));
    return { root: env.root, runner: env.runner, log, exporter: null };
  }

  /** Whether the unit is related over cos-agent: then the exporter runs. */
  private cosRelated(): boolean {
    return this.model.stored.get<boolean>(COS_RELATED_KEY) === true;
  }

  private memory(): PreparationMemory {
    return loadMemory(this.model.stored.get<unknown>(MEMORY_KEY));
  }

  private remember(result: PreparationResult): void {
    if (JSON.stringify(result.memory) !== JSON.stringify(this.memory())) {
      this.model.stored.set(MEMORY_KEY, result.memory);
    }
  }

  /** Makes the host match the config, then tells nova-compute what is really bound and the
   * other units what this host offers; the leader merges the fleet. */
  private reconcile(event: string, fleet: FleetTrigger | null = null): void {
    // A nova-compute relation hook republishes; the peer relation's hooks are not about nova.
    const relationHook = event.includes("-relation-") && !event.startsWith(`${FLEET_ENDPOINT}-`);
    const raw = this.model.config();
    const related = this.cosRelated();
    const warnings: string[] = [];
    const deps: PreparationDeps = {
      ...this.deps(warnings),
      exporter: related
        ? {
            // The runtime dispatch chose for this hook: the charm's own runtime/bin/node.
            nodePath: process.execPath,
            charmDir: this.framework.context.charmDir,
            restart: event === "upgrade-charm",
          }
        : null,
    };
    const result = prepareHost(raw, this.memory(), deps);
    if (related && COS_PUBLISH_EVENTS.has(event)) this.publishCos();
    this.remember(result);
    this.sayChangedWarnings(warnings);
    this.status = statusFor(result.outcome);
    const reboot = handleReboot(this.model, result, deps, {
      act: true,
      fleetEvent: event.startsWith(`${FLEET_ENDPOINT}-relation-`) || fleet?.kind === "departed",
      departing: fleet?.kind === "departed" ? fleet.unit : null,
    });
    if (reboot) this.status = rebootStatus(this.status, reboot.decision.verdict);
    const { outcome, config } = result;
    // Without a fresh plan the offer published last stands (undefined: the leader reads it back).
    let offer: HostOffer | undefined;
    let offerChanged = false;
    if (outcome.kind === "prepared" && config !== null) {
      const { plan, facts } = outcome;
      // dpkg's status consulted once for the relation and the offer alike.
      const release = novaReleaseFor(this.model, deps.root, plan);
      publishNova(this.model, NOVA_ENDPOINT, plan, facts, {
        release,
        config,
        force: relationHook,
      });
      const onVfio = new Set(
        facts.functions.filter((f) => f.driver === "vfio-pci").map((f) => f.address),
      );
      const published = publishOffer(
        this.model,
        {
          bound: plan.bind,
          withheld: plan.withheld,
          sriov: plan.sriov,
          onVfio: (a) => onVfio.has(a),
          pfReady: (pf) => sriovReady(pf, facts),
          release,
          placement: novaFeatures(release, placementWanted(this.model, config)).placement,
        },
        relationHook,
      );
      offer = published.offer;
      offerChanged = published.changed;
    }
    this.fleetStatus = this.mergeFleet(fleet, offerChanged ? offer : undefined);
  }

  /**
   * The leader's merge when something changed (a peer, leadership, our own offer), and its
   * status line. An idle hook asks nothing: the line is remembered, and leadership is asked only
   * while a line is remembered (a unit that lost leadership drops it).
   */
  private mergeFleet(trigger: FleetTrigger | null, offer: HostOffer | undefined): string | null {
    const remembered = this.model.stored.get<string>(FLEET_STATUS_KEY) ?? null;
    if (trigger === null && offer === undefined) {
      if (remembered === null) return null;
      if (this.model.isLeader()) return remembered;
      this.model.stored.delete(FLEET_STATUS_KEY);
      return null;
    }
    const summary = updateFleet(this.model, offer, trigger ?? { kind: "self" });
    const line = summary ? summaryConflictStatus(summary) : null;
    if (line === null) this.model.stored.delete(FLEET_STATUS_KEY);
    else if (line !== remembered) this.model.stored.set(FLEET_STATUS_KEY, line);
    return line;
  }

  /** The scrape job, rules and dashboard for the agent (a bad exporter-port publishes nothing:
   * the status already names it). */
  private publishCos(): void {
    const port = parseExporterPort(this.model.config()["exporter-port"]);
    if (!("port" in port)) return;
    const context = this.framework.context;
    const value = cosAgentConfigValue(
      context.charmDir,
      {
        model: context.modelName,
        modelUuid: context.modelUuid,
        application: context.appName,
        charmName: "pci-passthrough",
      },
      port.port,
    );
    publishCosAgent(this.model, value);
  }

  /** Logs this hook's warnings when they differ from the last reconcile's; when they are gone,
   * says so once. */
  private sayChangedWarnings(warnings: string[]): void {
    const digest = warnings.length === 0 ? "" : digestOf(warnings.join("\n"));
    const before = this.model.stored.get<string>(WARNED_KEY) ?? "";
    if (digest === before) return;
    for (const message of warnings) this.model.log("WARNING", message);
    if (warnings.length === 0)
      this.model.log("INFO", "the warnings logged earlier about this host no longer apply");
    this.model.stored.set(WARNED_KEY, digest);
  }

  private onNovaLeaving(event: RelationEvent): void {
    clearNovaRelations(this.model, [event.relation]);
  }

  /** The unit is going away with its last container relation: leave the host as it was found. */
  private onContainerBroken(event: RelationEvent): void {
    const others = CONTAINER_ENDPOINTS.flatMap((ep) => this.model.relations(ep)).filter(
      (r) => !(r.name === event.endpoint && r.id === event.relationId),
    );
    if (others.length === 0) this.removeFromHost();
  }

  private removeFromHost(): void {
    clearNovaRelations(this.model, this.model.relations(NOVA_ENDPOINT));
    const result = restoreHost(this.memory(), this.deps());
    this.remember(result);
    this.status = statusFor(result.outcome);
  }

  private actionContext() {
    return {
      model: this.model,
      deps: this.deps(),
      rememberedModules: this.memory().modules ?? null,
      noGrub: this.memory().files.notFound?.grub !== undefined,
    };
  }
}

/** FNV-1a of the text, 8 hex digits: enough to tell one set of warnings from the next (node:crypto
 * would cost its load on every hook). */
function digestOf(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, "0");
}

/** The actions' code: their glue, planners, result trees and parameter checks, a third of the
 * charm. dispatch runs actions with dist/actions.js, which holds it; dist/charm.js, which runs the
 * hooks, has a stub in its place, so no hook loads it. */
export function actionCode(): typeof actions {
  return actions;
}

/** `reboot: when-idle`, as the option parser reads it (any case, trimmed). */
function rebootWhenIdle(config: Readonly<Record<string, unknown>>): boolean {
  const value = config.reboot;
  return typeof value === "string" && value.trim().toLowerCase() === "when-idle";
}

function toShimStatus(status: UnitStatus): StatusBase {
  switch (status.name) {
    case "active":
      return new ActiveStatus(status.message);
    case "blocked":
      return new BlockedStatus(status.message);
    case "maintenance":
      return new MaintenanceStatus(status.message);
    case "waiting":
      return new WaitingStatus(status.message);
  }
}
