import { BlockList, isIP, isIPv4 } from 'node:net';

/**
 * Where a URL import may connect. imgr downloads a PATH URL itself, and every
 * address its name resolves to (at each redirect too) is checked here before
 * a socket opens: the addresses that reach the host itself, its local
 * networks or nobody are refused, unless the datastore allows them by name in
 * its template (URL_ALLOW_ATTRIBUTE). The driver host's own API, metrics, a
 * cloud's metadata service (169.254.169.254) and every RFC 1918 neighbour are
 * in these ranges.
 */

/** The datastore template attribute that lists the networks a URL import may reach anyway: CIDRs or addresses, separated by commas or blanks. */
export const URL_ALLOW_ATTRIBUTE = 'IMGR_URL_ALLOWED_NETWORKS';

/** Each refused range with the name a refusal shows. */
export const REFUSED_RANGES: readonly { readonly cidr: string; readonly what: string }[] = [
  { cidr: '0.0.0.0/8', what: 'unspecified' },
  { cidr: '10.0.0.0/8', what: 'private' },
  { cidr: '100.64.0.0/10', what: 'shared (CGNAT)' },
  { cidr: '127.0.0.0/8', what: 'loopback' },
  { cidr: '169.254.0.0/16', what: 'link-local' },
  { cidr: '172.16.0.0/12', what: 'private' },
  { cidr: '192.0.0.0/24', what: 'IETF protocol assignments' },
  { cidr: '192.168.0.0/16', what: 'private' },
  { cidr: '198.18.0.0/15', what: 'benchmarking' },
  { cidr: '224.0.0.0/4', what: 'multicast' },
  { cidr: '240.0.0.0/4', what: 'reserved' },
  { cidr: '::/128', what: 'unspecified' },
  { cidr: '::1/128', what: 'loopback' },
  { cidr: 'fc00::/7', what: 'unique local' },
  { cidr: 'fe80::/10', what: 'link-local' },
  { cidr: 'fec0::/10', what: 'site-local' },
  { cidr: 'ff00::/8', what: 'multicast' },
];

const toBlockList = (cidrs: readonly string[]): BlockList => {
  const list = new BlockList();
  for (const c of cidrs) {
    const [net = '', bits = ''] = c.split('/');
    const family = isIPv4(net) ? 'ipv4' : 'ipv6';
    list.addSubnet(net, Number(bits), family);
  }
  return list;
};

const RANGES = REFUSED_RANGES.map((r) => ({ ...r, list: toBlockList([r.cidr]) }));

/** 32 bits as a dotted quad. */
const quad = (hi: number, lo: number): string => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;

/** The 8 groups of an IPv6 address, or null when it is not one. */
function groups(ip: string): number[] | null {
  if (isIP(ip) !== 6) return null;
  let text = ip.toLowerCase();
  // A trailing dotted quad (::ffff:1.2.3.4) is two groups.
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1] !== undefined && dotted[2] !== undefined) {
    const [a = 0, b = 0, c = 0, d = 0] = dotted[2].split('.').map(Number);
    text = `${dotted[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? [] : new Array<string>(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16));
}

/**
 * The IPv4 address an IPv6 one stands for, where it embeds one a socket would
 * reach: IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d, deprecated)
 * and the NAT64 well-known prefix (64:ff9b::a.b.c.d). Anything else as it is.
 */
export function canonicalAddress(ip: string): string {
  const g = groups(ip);
  if (g === null) return ip;
  const [g0, g1, g2, g3, g4, g5, g6 = 0, g7 = 0] = g;
  const zeroTo4 = g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0;
  if (zeroTo4 && g5 === 0xffff) return quad(g6, g7);
  if (zeroTo4 && g5 === 0 && (g6 !== 0 || g7 > 1)) return quad(g6, g7);
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) return quad(g6, g7);
  return ip;
}

/** Why an address may not be reached by a URL import (the range's name), or null when it is a public one. */
export function refusedRange(ip: string): string | null {
  // A zone (fe80::1%eth0) names an interface, not another address.
  const a = canonicalAddress(ip.split('%')[0] ?? '');
  const family = isIPv4(a) ? 'ipv4' : isIP(a) === 6 ? 'ipv6' : null;
  if (family === null) return NOT_AN_ADDRESS;
  return RANGES.find((r) => r.list.check(a, family))?.what ?? null;
}

const NOT_AN_ADDRESS = 'not an IP address';

/** The networks a datastore allows (URL_ALLOW_ATTRIBUTE); an entry that is not an address or a CIDR is an error. */
export class AllowedNetworks {
  private constructor(
    private readonly list: BlockList,
    readonly empty: boolean,
  ) {}

  static parse(text: string | undefined): AllowedNetworks {
    const entries = (text ?? '').split(/[\s,]+/).filter((e) => e !== '');
    const list = new BlockList();
    for (const e of entries) {
      const [net = '', bits, more] = e.split('/');
      const family = isIPv4(net) ? 'ipv4' : isIP(net) === 6 ? 'ipv6' : null;
      const max = family === 'ipv4' ? 32 : 128;
      const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
      if (family === null || more !== undefined || !(prefix >= 0 && prefix <= max)) {
        throw new Error(`${URL_ALLOW_ATTRIBUTE}: ${JSON.stringify(e.slice(0, 64))} is not an address or a network (a.b.c.d/n, x::/n)`);
      }
      list.addSubnet(net, prefix, family);
    }
    return new AllowedNetworks(list, entries.length === 0);
  }

  has(ip: string): boolean {
    const plain = ip.split('%')[0] ?? '';
    if (this.empty || isIP(plain) === 0) return false;
    const a = canonicalAddress(plain);
    const family = isIPv4(a) ? 'ipv4' : 'ipv6';
    return this.list.check(a, family) || (a !== plain && this.list.check(plain, 'ipv6'));
  }
}

/** Null when a URL import may connect to `ip`, else why not. */
export function addressRefusal(ip: string, allowed: AllowedNetworks): string | null {
  if (allowed.has(ip)) return null;
  const range = refusedRange(ip);
  if (range === NOT_AN_ADDRESS) return `${ip} is ${NOT_AN_ADDRESS}`;
  return range === null ? null : `${ip} is a ${range} address (the datastore's ${URL_ALLOW_ATTRIBUTE} may allow it)`;
}
