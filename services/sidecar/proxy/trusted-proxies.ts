import { BlockList, isIPv6 } from "node:net";

/**
 * `(address) => boolean`: whether a peer is one of the `GATEHOUSE_TRUSTED_PROXIES` addresses or
 * ranges (already validated as IPs/CIDRs by the setting). IPv4 peers reached over a dual-stack
 * socket (`::ffff:10.0.0.1`) match IPv4 ranges. No ranges: nobody is trusted, without a lookup.
 */
export function trustedProxies(ranges: readonly string[]): (address: string) => boolean {
  if (ranges.length === 0) return () => false;
  const list = new BlockList();
  for (const range of ranges) {
    const [address = "", prefix] = range.split("/");
    const family = isIPv6(address) ? "ipv6" : "ipv4";
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(prefix), family);
  }
  return (address) => list.check(address, isIPv6(address) ? "ipv6" : "ipv4");
}
