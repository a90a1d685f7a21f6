// Host offers as units publish them on the fleet peer relation, built for the fleet tests.
import type { HostOffer, OfferAlias } from "../../src/plan/fleet";

/** A host's offer: nova `nova` installed, PCI in Placement off, these aliases. */
export const hostOffer = (nova: string, aliases: OfferAlias[]): HostOffer => ({
  v: 1,
  nova,
  placement: false,
  aliases,
});

/** One alias of an offer; `ids` is "vvvv:dddd"; one function offered, none pending or withheld,
 * type-PCI, unless `extra` says else. */
export function offerAlias(name: string, ids: string, extra: Partial<OfferAlias> = {}): OfferAlias {
  return {
    name,
    ...aliasIds(ids),
    device_type: "type-PCI",
    offered: 1,
    pending: 0,
    withheld: 0,
    ...extra,
  };
}

/** "vvvv:dddd" as an offer's alias carries it. */
function aliasIds(ids: string): Pick<OfferAlias, "vendor_id" | "product_id"> {
  const [vendor_id = "", product_id = ""] = ids.split(":");
  return { vendor_id, product_id };
}
