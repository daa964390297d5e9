/**
 * The addresses a URL import may not reach (address-policy.ts): every range,
 * its edges, the IPv6 forms that embed an IPv4 address, and what a
 * datastore's allowance opens.
 */
import { describe, expect, it } from 'vitest';
import { AllowedNetworks, REFUSED_RANGES, addressRefusal, canonicalAddress, refusedRange } from '../../src/driver-host/address-policy.js';

const none = AllowedNetworks.parse(undefined);

describe('refusedRange', () => {
  // One address inside each range (its first, a middle one and its last), named by what a refusal shows.
  const inside: [string, string][] = [
    ['0.0.0.0', 'unspecified'],
    ['0.255.255.255', 'unspecified'],
    ['10.0.0.0', 'private'],
    ['10.20.30.40', 'private'],
    ['10.255.255.255', 'private'],
    ['100.64.0.0', 'shared (CGNAT)'],
    ['100.127.255.255', 'shared (CGNAT)'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['169.254.169.254', 'link-local'],
    ['169.254.0.0', 'link-local'],
    ['172.16.0.0', 'private'],
    ['172.31.255.255', 'private'],
    ['192.0.0.8', 'IETF protocol assignments'],
    ['192.168.0.1', 'private'],
    ['192.168.255.255', 'private'],
    ['198.18.0.1', 'benchmarking'],
    ['198.19.255.255', 'benchmarking'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'reserved'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['fc00::1', 'unique local'],
    ['fdff:ffff::1', 'unique local'],
    ['fe80::1', 'link-local'],
    ['febf:ffff::1', 'link-local'],
    ['fec0::1', 'site-local'],
    ['ff02::1', 'multicast'],
    ['ff0e::1', 'multicast'],
    // IPv4-mapped, -compatible and NAT64 forms of refused IPv4 addresses.
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::FFFF:169.254.169.254', 'link-local'],
    ['::ffff:10.1.2.3', 'private'],
    ['::ffff:192.168.1.1', 'private'],
    ['::ffff:100.64.1.1', 'shared (CGNAT)'],
    ['::ffff:0.0.0.0', 'unspecified'],
    ['::127.0.0.1', 'loopback'],
    ['64:ff9b::a9fe:a9fe', 'link-local'],
    ['64:ff9b::10.0.0.1', 'private'],
  ];
  it.each(inside)('%s is refused as %s', (ip, what) => {
    expect(refusedRange(ip)).toBe(what);
    expect(addressRefusal(ip, none)).toContain(`is a ${what} address`);
  });

  // Just outside each IPv4 range's edges, and public IPv6.
  const outside = [
    '1.0.0.0',
    '9.255.255.255',
    '11.0.0.0',
    '100.63.255.255',
    '100.128.0.0',
    '126.255.255.255',
    '128.0.0.0',
    '169.253.255.255',
    '169.255.0.0',
    '172.15.255.255',
    '172.32.0.0',
    '192.167.255.255',
    '192.169.0.0',
    '198.17.255.255',
    '198.20.0.0',
    '223.255.255.255',
    '8.8.8.8',
    '2001:4860:4860::8888',
    '2606:4700::1111',
    'fbff:ffff::1',
    'fe7f::1',
    '::ffff:8.8.8.8',
    '64:ff9b::808:808',
  ];
  it.each(outside)('%s is public', (ip) => {
    expect(refusedRange(ip)).toBeNull();
    expect(addressRefusal(ip, none)).toBeNull();
  });

  it('covers every range it declares (a new range needs an address above)', () => {
    const named = new Set(inside.map(([, what]) => what));
    for (const r of REFUSED_RANGES) expect(named, r.cidr).toContain(r.what);
    for (const r of REFUSED_RANGES) {
      const first = r.cidr.split('/')[0] ?? '';
      expect(refusedRange(first), r.cidr).toBe(r.what);
    }
  });

  it('a name that is not an address is never taken for a public one', () => {
    expect(refusedRange('localhost')).toBe('not an IP address');
    expect(addressRefusal('localhost', AllowedNetworks.parse('0.0.0.0/0'))).toBe('localhost is not an IP address');
    expect(addressRefusal('', none)).toBe(' is not an IP address');
  });
  it('a zone names an interface: the address is classified without it', () => {
    expect(refusedRange('fe80::1%eth0')).toBe('link-local');
    expect(refusedRange('::ffff:127.0.0.1%1')).toBe('loopback');
    expect(refusedRange('2001:4860:4860::8888%2')).toBeNull();
  });
});

describe('canonicalAddress', () => {
  it('unwraps IPv4-mapped, -compatible and NAT64 addresses, and leaves others alone', () => {
    expect(canonicalAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(canonicalAddress('::ffff:a9fe:a9fe')).toBe('169.254.169.254');
    expect(canonicalAddress('0:0:0:0:0:ffff:0a00:0001')).toBe('10.0.0.1');
    expect(canonicalAddress('::10.0.0.1')).toBe('10.0.0.1');
    expect(canonicalAddress('64:ff9b::c0a8:101')).toBe('192.168.1.1');
    expect(canonicalAddress('::1')).toBe('::1');
    expect(canonicalAddress('2001:db8::1')).toBe('2001:db8::1');
    expect(canonicalAddress('127.0.0.1')).toBe('127.0.0.1');
  });
});

describe('a datastore allowance', () => {
  it('opens exactly the networks it lists, in every form of their addresses', () => {
    const a = AllowedNetworks.parse('127.0.0.1/32, 10.0.0.0/8 fd00::/8');
    expect(addressRefusal('127.0.0.1', a)).toBeNull();
    expect(addressRefusal('::ffff:127.0.0.1', a)).toBeNull();
    expect(addressRefusal('10.9.8.7', a)).toBeNull();
    expect(addressRefusal('fd12::1', a)).toBeNull();
    expect(addressRefusal('127.0.0.2', a)).toMatch(/loopback/);
    expect(addressRefusal('169.254.169.254', a)).toMatch(/link-local/);
    expect(addressRefusal('fc00::1', a)).toMatch(/unique local/);
  });
  it('an address alone is its own /32 or /128', () => {
    const a = AllowedNetworks.parse('127.0.0.1 ::1');
    expect(addressRefusal('127.0.0.1', a)).toBeNull();
    expect(addressRefusal('::1', a)).toBeNull();
    expect(addressRefusal('127.0.0.2', a)).not.toBeNull();
  });
  it('an entry that is neither an address nor a network is an error', () => {
    for (const bad of ['localhost', '10.0.0.0/33', '10.0.0.0/8/1', 'fd00::/129', '10.0.0/8', '10.0.0.0/x']) {
      expect(() => AllowedNetworks.parse(bad), bad).toThrow(/IMGR_URL_ALLOWED_NETWORKS/);
    }
  });
});
