// Publishes this host's [pci] device_spec and alias to nova-compute over the container-scoped
// relation, for the functions that are really on vfio-pci now. What to publish is decided in
// plan/nova.ts; this module only reads the installed nova release and talks to the relation.
import type { Model, Relation } from "ops-ts-shim";
import type { Config } from "./config";
import { REPORT_IN_PLACEMENT_WARNING } from "./config/placement";
import type { HostFacts, NovaRelease } from "./host/facts";
import { fileStamp } from "./host/file-stamp";
import { readNovaRelease } from "./host/nova-release";
import { READ } from "./host/root";
import {
  clearedNovaRelationData,
  novaFeatures,
  novaRelationData,
  resolveOptionName,
  SUBORDINATE_CONFIGURATION_KEY,
} from "./plan/nova";

/** Our endpoint to nova-compute (interface ephemeral-backend). */
export const NOVA_ENDPOINT = "nova-compute";

import { fingerprint } from "./apply/host-files";
import { sriovReady } from "./plan/sriov";
import type { HostDecisions } from "./plan/types";

/** Stored-state key: a digest of the subordinate_configuration value last published (on every
 * relation). Never the value: Juju refuses a stored value over 64 KiB (quota.CheckTupleSize), and
 * the value grows with the host (549 KB with 4,096 functions, one spec each, before compaction). */
const PUBLISHED_KEY = "nova-published-fingerprint";
/** Keys that held it before, deleted when met (an upgraded unit republishes once): the whole
 * value, then its sha256 (node:crypto, and OpenSSL's start-up with it, cost every hook). */
const OLD_PUBLISHED_KEYS = ["nova-published", "nova-published-sha256"];

/** What the stored digest says about a published value (null: the key is absent). The owned
 * files' fingerprint: nobody forges a relation value to collide with our last one. */
export function publishedDigest(value: string | null): string | null {
  return value === null ? null : fingerprint(value);
}

/** Stored-state key: the nova release last read from dpkg's status, with that file's stamp. */
const RELEASE_KEY = "nova-release";

export interface PublishOptions {
  /** The installed nova (novaReleaseFor): read once by the caller, who offers it to the fleet
   * too; null when none is installed or the plan offers nothing. */
  release: NovaRelease | null;
  /** The parsed config (its `novaPciOption`: parseConfig lower-cases it, `DEVICE_SPEC` is
   * device_spec), never the raw option values. */
  config: Config;
  /** Go to the relations even if the value is unchanged (relation hooks: a new relation). */
  force: boolean;
}

/** Sends the current values to every nova-compute relation when they changed. */
export function publishNova(
  model: Model,
  endpoint: string,
  plan: HostDecisions,
  facts: HostFacts,
  options: PublishOptions,
): void {
  const onVfio = new Set(
    facts.functions.filter((f) => f.driver === "vfio-pci").map((f) => f.address),
  );
  const setting = options.config.novaPciOption;
  const release = options.release;
  const { data } = novaRelationData(
    plan.bind,
    (a) => onVfio.has(a),
    resolveOptionName(setting, setting === "auto" ? release : null),
    { pfs: plan.sriov, ready: (pf) => sriovReady(pf, facts) },
    novaFeatures(release, placementWanted(model, options.config)),
  );
  const value = data[SUBORDINATE_CONFIGURATION_KEY] ?? null;
  // Unchanged since the last publish: no relation-ids / relation-get / relation-set at all, so an
  // idle hook stays within its few hook-tool calls. New relations arrive with their own hooks.
  const digest = publishedDigest(value);
  for (const old of OLD_PUBLISHED_KEYS) {
    if (model.stored.get<unknown>(old) !== undefined) model.stored.delete(old);
  }
  if (options.force || model.stored.get<string | null>(PUBLISHED_KEY) !== digest) {
    for (const relation of model.relations(endpoint)) relation.setLocalUnitData(data);
    model.stored.set(PUBLISHED_KEY, digest);
  }
}

/** Stored-state key: this host's nova-compute was told report_in_placement = True once. */
const PLACEMENT_KEY = "nova-placement-on";

/** Whether to send `[pci] report_in_placement = True`: when the option asks for it, and ever
 * after once sent, because nova-compute refuses to start with it turned off again
 * (REPORT_IN_PLACEMENT_WARNING). Setting the option back to false is logged, not obeyed. */
export function placementWanted(model: Model, config: Config): boolean {
  const before = model.stored.get<boolean>(PLACEMENT_KEY) === true;
  if (config.reportInPlacement === true) {
    if (!before) model.stored.set(PLACEMENT_KEY, true);
    return true;
  }
  if (before && model.stored.get<boolean>(`${PLACEMENT_KEY}-warned`) !== true) {
    model.log(
      "WARNING",
      "pci-report-in-placement=false, but this host's nova-compute was told report_in_placement " +
        `= True before: the charm keeps sending True. ${REPORT_IN_PLACEMENT_WARNING} Set ` +
        "pci-report-in-placement=true to silence this.",
    );
    model.stored.set(`${PLACEMENT_KEY}-warned`, true);
  }
  return before;
}

/** What placementWanted answers, without recording anything (the nova-config action reads). */
export function placementOn(model: Model, config: Config): boolean {
  return config.reportInPlacement === true || model.stored.get<boolean>(PLACEMENT_KEY) === true;
}

/** The installed nova when the plan offers something (the option name and nova's newer features,
 * `managed` from nova 31, follow the release), else null without looking: dpkg's status is large.
 * One call per hook: the nova relation and the fleet offer both take its answer. */
export function novaReleaseFor(
  model: Model,
  root: string,
  plan: HostDecisions,
): NovaRelease | null {
  return plan.bind.length > 0 || plan.sriov.length > 0 ? installedNova(model, root) : null;
}

/** The installed nova. dpkg's status runs to megabytes on a compute host and update-status comes
 * every five minutes, so it is read again only when the file changed since the last read. */
export function installedNova(model: Model, root: string): NovaRelease | null {
  const stamp = fileStamp(root, READ.dpkgStatus);
  const known = model.stored.get<{ stamp: string; release: NovaRelease | null }>(RELEASE_KEY);
  if (stamp !== null && known?.stamp === stamp) return known.release;
  const release = readNovaRelease(root);
  if (stamp === null) model.stored.delete(RELEASE_KEY);
  else model.stored.set(RELEASE_KEY, { stamp, release });
  return release;
}

/** Removes our key from the given relations (departed, broken, removal). */
export function clearNovaRelations(model: Model, relations: Relation[]): void {
  for (const relation of relations) relation.setLocalUnitData(clearedNovaRelationData());
  model.stored.delete(PUBLISHED_KEY);
  for (const old of OLD_PUBLISHED_KEYS) model.stored.delete(old);
  model.stored.delete(RELEASE_KEY);
}
