// charm-nova-compute's side of the ephemeral-backend relation, emulated from its own code: how
// charmhelpers' SubordinateConfigContext merges subordinates' `subordinate_configuration`, the
// order hooks/nova_compute_utils.py applies its three subordinate contexts in, and how its
// templates render the result into /etc/nova/nova.conf (README: "nova-compute: why
// `ephemeral-backend`"). Used by tests/unit/nova-contract.test.ts, and by the demo to show what
// nova-compute renders from what the charm sends.

export type UnitData = Record<string, string | null | undefined>;
export interface Relation {
  endpoint: string;
  units: UnitData[];
}
export type Pair = [string, string];
export type Sections = Record<string, Pair[]>;
export type Ctxt = Record<string, unknown> & { sections?: Sections };

const SERVICES = ["nova-compute", "nova"];
const NOVA_CONF = "/etc/nova/nova.conf";

/** charmhelpers SubordinateConfigContext.__call__ (and the neutron-plugin variant's completeness). */
export function subordinateConfigContext(
  relations: Relation[],
  interfaces: string[],
  neutronVariant = false,
): Ctxt {
  const ctxt: Ctxt = { sections: {} };
  for (const iface of interfaces) {
    for (const rel of relations.filter((r) => r.endpoint === iface)) {
      for (const unit of rel.units) {
        const raw = unit.subordinate_configuration;
        if (!raw) continue;
        // biome-ignore lint/suspicious/noExplicitAny: mirrors Python's untyped json.loads result
        let sub: any;
        try {
          sub = JSON.parse(raw);
        } catch {
          continue; // "Could not parse JSON from subordinate_configuration"
        }
        for (const service of SERVICES) {
          if (!(service in sub)) continue;
          sub = sub[service];
          if (!(NOVA_CONF in sub)) continue;
          sub = sub[NOVA_CONF];
          for (const [k, v] of Object.entries(sub)) {
            if (k === "sections") {
              for (const [section, list] of Object.entries(v as Sections)) {
                const have = ctxt.sections![section];
                if (have && have.length > 0) have.push(...list);
                else ctxt.sections![section] = list;
              }
            } else {
              ctxt[k] = v;
            }
          }
        }
      }
    }
  }
  if (neutronVariant) return "sections" in ctxt ? ctxt : {};
  if (Object.keys(ctxt.sections!).length === 0) return {};
  const missing = Object.values(ctxt).some((v) => v === null || v === "");
  return missing ? {} : ctxt;
}

export interface NovaComputeView {
  /** The merged template context (what the template sees as `sections`). */
  sections: Sections;
  /** Whether `ephemeral-backend` counts as a complete context: nova-compute's
   * ephemeral-backend-relation-changed/-broken hook rewrites nova.conf only then. */
  ephemeralBackendComplete: boolean;
}

/** hooks/nova_compute_utils.py's three subordinate contexts for nova.conf, merged in order. */
export function novaComputeContext(relations: Relation[]): NovaComputeView {
  const merged: Ctxt = {};
  const contexts: [Ctxt, string[]][] = [
    [subordinateConfigContext(relations, ["neutron-plugin"], true), ["neutron-plugin"]],
    [
      subordinateConfigContext(relations, ["nova-ceilometer", "ephemeral-backend"]),
      ["nova-ceilometer", "ephemeral-backend"],
    ],
    [subordinateConfigContext(relations, ["nova-vgpu"]), ["nova-vgpu"]],
  ];
  let ephemeralBackendComplete = false;
  for (const [c, ifaces] of contexts) {
    if (Object.keys(c).length === 0) continue; // Python: `if _ctxt:`
    Object.assign(merged, c); // Python: ctxt.update(_ctxt)
    if (ifaces.includes("ephemeral-backend")) ephemeralBackendComplete = true;
  }
  return { sections: merged.sections ?? {}, ephemeralBackendComplete };
}

/** templates/parts/section-ephemeral as jinja2 renders it. */
export function sectionEphemeral(sections: Sections): string {
  let out = "";
  for (const [section, pairs] of Object.entries(sections)) {
    if (section === "DEFAULT") continue;
    out += `[${section}]\n`;
    for (const [key, value] of pairs) out += `${key} = ${value}\n`;
    out += "\n";
  }
  return out;
}

/** The parts of templates/yoga/nova.conf that carry subordinate data, in file order: the
 * subordinates' DEFAULT lines, nova-compute's own `[pci]` (its pci-passthrough-whitelist and
 * pci-alias options unset, as they should be with this charm), then section-ephemeral. */
export function renderNovaConf(view: NovaComputeView): string {
  const defaults = (view.sections.DEFAULT ?? []).map(([k, v]) => `${k} = ${v}\n`).join("");
  return `[DEFAULT]\n${defaults}\n[pci]\n\n${sectionEphemeral(view.sections)}`;
}
