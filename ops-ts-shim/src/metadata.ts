// The charm's own declarations (metadata.yaml, actions.yaml, config.yaml), read only when a
// dispatch needs them: they decide which events exist and which relation endpoints are real.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** `yaml` is most of a small charm's bundle and most dispatches never read a declaration, so it is
 * required on first use: a bundler keeps it in a closure that runs then, not at start-up. */
function parse(text: string): unknown {
  return (require("yaml") as typeof import("yaml")).parse(text);
}

/** One relation endpoint from metadata.yaml. */
export interface EndpointSpec {
  interface: string;
  scope?: "global" | "container";
  limit?: number;
  optional?: boolean;
}

/** The parts of metadata.yaml the shim reads; anything else is carried along untouched. */
export interface CharmMetadata {
  name?: string;
  subordinate?: boolean;
  requires?: Record<string, EndpointSpec>;
  provides?: Record<string, EndpointSpec>;
  peers?: Record<string, EndpointSpec>;
  [key: string]: unknown;
}

/** One action from actions.yaml (its params are a JSON schema's `properties`). */
export interface ActionSpec {
  description?: string;
  params?: Record<string, Record<string, unknown>>;
  required?: string[];
  additionalProperties?: boolean;
  [key: string]: unknown;
}

/** actions.yaml: action name → spec. */
export type ActionsSpec = Record<string, ActionSpec>;

/** One option from config.yaml. */
export interface ConfigOptionSpec {
  type: "string" | "int" | "float" | "boolean" | "secret";
  default?: unknown;
  description?: string;
}

/** config.yaml. */
export interface ConfigSpec {
  options?: Record<string, ConfigOptionSpec>;
}

/** A charm declaration file that exists but cannot be used. */
export class CharmMetadataError extends Error {
  override name = "CharmMetadataError";
}

const readYaml = (path: string): unknown => {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new CharmMetadataError(`cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    return parse(text);
  } catch (e) {
    throw new CharmMetadataError(`${path} is not valid YAML: ${(e as Error).message}`);
  }
};

const asMapping = (value: unknown, path: string): Record<string, unknown> => {
  if (value === null || value === undefined) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new CharmMetadataError(`${path} must be a YAML mapping at the top level`);
  }
  return value as Record<string, unknown>;
};

/** Parses YAML text (or passes an object through) as a top-level mapping. */
export function parseDeclaration<T>(source: string | object | undefined, what: string): T {
  if (source === undefined) return {} as T;
  if (typeof source === "string") {
    try {
      return asMapping(parse(source), what) as T;
    } catch (e) {
      if (e instanceof CharmMetadataError) throw e;
      throw new CharmMetadataError(`${what} is not valid YAML: ${(e as Error).message}`);
    }
  }
  return asMapping(source, what) as T;
}

/** metadata.yaml from the charm dir (or charmcraft.yaml, where newer charms keep it). */
export function loadMetadata(charmDir: string): CharmMetadata {
  for (const file of ["metadata.yaml", "charmcraft.yaml"]) {
    const path = join(charmDir, file);
    if (existsSync(path)) return asMapping(readYaml(path), path) as CharmMetadata;
  }
  throw new CharmMetadataError(
    `neither metadata.yaml nor charmcraft.yaml found in ${charmDir} (JUJU_CHARM_DIR)`,
  );
}

/** actions.yaml from the charm dir; a charm without one has no actions. */
export function loadActions(charmDir: string): ActionsSpec {
  const path = join(charmDir, "actions.yaml");
  if (!existsSync(path)) return {};
  return asMapping(readYaml(path), path) as ActionsSpec;
}

/** Every relation endpoint the charm declares, with its role. */
export function endpointsOf(
  metadata: CharmMetadata,
): Map<string, { role: "requires" | "provides" | "peers"; spec: EndpointSpec }> {
  const out = new Map<string, { role: "requires" | "provides" | "peers"; spec: EndpointSpec }>();
  for (const role of ["requires", "provides", "peers"] as const) {
    for (const [name, spec] of Object.entries(metadata[role] ?? {})) {
      out.set(name, { role, spec });
    }
  }
  return out;
}
