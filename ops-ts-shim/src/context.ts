// The Juju hook environment, read once per dispatch into a frozen object so no other module
// touches process.env (and tests can pass an environment of their own).

/** A required JUJU_* variable is missing: the process was not started by Juju (or the simulator). */
export class JujuContextError extends Error {
  override name = "JujuContextError";
}

/** The plain fields of a JujuContext. */
export type JujuContextFields = { readonly [K in keyof JujuContext]: JujuContext[K] };

const RELATION_KINDS = ["created", "joined", "changed", "departed", "broken"] as const;

/** Everything Juju tells a charm about the current dispatch, from `JUJU_*` variables. */
export class JujuContext {
  /** `hooks/<name>` or `actions/<name>` (JUJU_DISPATCH_PATH). */
  declare readonly dispatchPath: string;
  /** `pci-passthrough/0` (JUJU_UNIT_NAME). */
  declare readonly unitName: string;
  /** The application part of the unit name. */
  declare readonly appName: string;
  /** Where the charm is unpacked (JUJU_CHARM_DIR, else CHARM_DIR). */
  declare readonly charmDir: string;
  declare readonly modelName: string;
  declare readonly modelUuid: string;
  /** e.g. `3.6.4` (JUJU_VERSION). */
  declare readonly jujuVersion: string;
  /**
   * The hook name, e.g. `config-changed` or `nova-compute-relation-joined`. Juju leaves
   * JUJU_HOOK_NAME empty for actions; then this is empty too. When JUJU_HOOK_NAME is absent
   * (old agents, hand-run dispatch) it is derived from a `hooks/<name>` dispatch path.
   */
  declare readonly hookName: string;
  declare readonly actionName: string | null;
  /** JUJU_ACTION_UUID (the action's id). */
  declare readonly actionId: string | null;
  declare readonly relationName: string | null;
  /** The number after the colon of JUJU_RELATION_ID (`nova-compute:3` → 3). */
  declare readonly relationId: number | null;
  declare readonly remoteUnit: string | null;
  /** JUJU_REMOTE_APP, or the application of JUJU_REMOTE_UNIT when Juju left it out. */
  declare readonly remoteApp: string | null;
  declare readonly departingUnit: string | null;
  declare readonly principalUnit: string | null;
  declare readonly machineId: string | null;
  declare readonly availabilityZone: string | null;
  /** JUJU_DEBUG is set: also echo logs to stderr. */
  declare readonly debug: boolean;

  private constructor(fields: JujuContextFields) {
    Object.assign(this, fields);
    Object.freeze(this);
  }

  /** Reads and checks the JUJU_* variables (default `process.env`); throws JujuContextError. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): JujuContext {
    const get = (name: string): string | null => {
      const value = env[name];
      return value === undefined || value === "" ? null : value;
    };
    const need = (name: string, why: string): string => {
      const value = get(name);
      if (value === null) {
        throw new JujuContextError(
          `${name} is not set (${why}); the charm must be run by Juju's dispatch, or by the unit simulator`,
        );
      }
      return value;
    };
    const dispatchPath = need("JUJU_DISPATCH_PATH", "it names the event to run");
    const unitName = need("JUJU_UNIT_NAME", "it names this unit");
    const slash = unitName.lastIndexOf("/");
    if (slash <= 0 || !/^\d+$/.test(unitName.slice(slash + 1))) {
      throw new JujuContextError(`JUJU_UNIT_NAME "${unitName}" is not a unit name like app/0`);
    }
    const isAction = dispatchPath.startsWith("actions/");
    const hookName =
      env.JUJU_HOOK_NAME ?? (dispatchPath.startsWith("hooks/") ? dispatchPath.slice(6) : "");
    const actionName = get("JUJU_ACTION_NAME") ?? (isAction ? dispatchPath.slice(8) : null);
    const rawRelationId = get("JUJU_RELATION_ID");
    let relationId: number | null = null;
    if (rawRelationId !== null) {
      const tail = rawRelationId.slice(rawRelationId.lastIndexOf(":") + 1);
      if (!/^\d+$/.test(tail)) {
        throw new JujuContextError(
          `JUJU_RELATION_ID "${rawRelationId}" is not a relation id like endpoint:3`,
        );
      }
      relationId = Number(tail);
    }
    const isRelationHook = RELATION_KINDS.some((kind) => hookName.endsWith(`-relation-${kind}`));
    if (isRelationHook && (get("JUJU_RELATION") === null || relationId === null)) {
      throw new JujuContextError(
        `relation hook ${hookName} without JUJU_RELATION and JUJU_RELATION_ID; Juju always sets both`,
      );
    }
    const remoteUnit = get("JUJU_REMOTE_UNIT");
    const remoteApp = get("JUJU_REMOTE_APP") ?? (remoteUnit ? remoteUnit.split("/")[0]! : null);
    return new JujuContext({
      dispatchPath,
      unitName,
      appName: unitName.slice(0, slash),
      charmDir: get("JUJU_CHARM_DIR") ?? get("CHARM_DIR") ?? process.cwd(),
      modelName: get("JUJU_MODEL_NAME") ?? "",
      modelUuid: get("JUJU_MODEL_UUID") ?? "",
      jujuVersion: get("JUJU_VERSION") ?? "0.0.0",
      hookName,
      actionName,
      actionId: get("JUJU_ACTION_UUID"),
      relationName: get("JUJU_RELATION"),
      relationId,
      remoteUnit,
      remoteApp,
      departingUnit: get("JUJU_DEPARTING_UNIT"),
      principalUnit: get("JUJU_PRINCIPAL_UNIT"),
      machineId: get("JUJU_MACHINE_ID"),
      availabilityZone: get("JUJU_AVAILABILITY_ZONE"),
      debug: env.JUJU_DEBUG !== undefined,
    });
  }
}
