// The relations the charm's tests join it to: one remote unit each, with the id the test dispatches on.

/** A relation on our `endpoint` to unit 0 of `remoteApp`. */
export function relationTo(endpoint: string, remoteApp: string, id: number) {
  return { endpoint, id, remoteApp, remoteUnits: [`${remoteApp}/0`] };
}

/** nova-compute, the principal, on our `nova-compute` endpoint (id 7 unless the test says). */
export const novaComputeRelation = (id = 7) => relationTo("nova-compute", "nova-compute", id);

/** grafana-agent on our `cos-agent` endpoint. */
export const cosAgentRelation = (id: number) => relationTo("cos-agent", "grafana-agent", id);
