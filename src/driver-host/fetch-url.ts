import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { createWriteStream } from 'node:fs';
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { addressRefusal, type AllowedNetworks } from './address-policy.js';

/**
 * Downloads of a PATH URL by imgr itself, never by a driver: every address a
 * name resolves to is checked before the socket opens (address-policy.ts),
 * at the first request and at each redirect; redirects are bounded and stay
 * on http(s). Node connects to an IP literal without a lookup, so a literal
 * host is checked here directly.
 */

export const MAX_REDIRECTS = 5;

/** A refused or failed transfer; `message` is what the image's ERROR shows. */
export class FetchError extends Error {}

export interface FetchOptions {
  readonly allowed: AllowedNetworks;
  readonly signal?: AbortSignal;
  readonly maxRedirects?: number;
}

/** A lookup that hands the socket only addresses the policy allows; none left is an error naming why. */
export function guardedLookup(allowed: AllowedNetworks): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) {
        callback(err, '', 0);
        return;
      }
      const usable = addresses.filter((a) => addressRefusal(a.address, allowed) === null);
      const first = usable[0];
      if (first === undefined) {
        const why = addresses.map((a) => addressRefusal(a.address, allowed)).find((r) => r !== null) ?? 'no address';
        callback(Object.assign(new FetchError(`${hostname}: ${why}`), { code: 'IMGR_ADDRESS_REFUSED' }), '', 0);
      } else if (options.all === true) {
        (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, usable);
      } else {
        callback(null, first.address, first.family);
      }
    });
  };
}

/** The URL checked for what it may be: http(s), and a literal address the policy allows. */
function checkedUrl(text: string, allowed: AllowedNetworks): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new FetchError(`not a URL: ${JSON.stringify(text.slice(0, 200))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new FetchError(`only http and https URLs are downloaded, not ${url.protocol.replace(/:$/, '')}`);
  if (url.username !== '' || url.password !== '') throw new FetchError('a URL with credentials is not downloaded');
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (isIP(host) !== 0) {
    const refusal = addressRefusal(host, allowed);
    if (refusal !== null) throw new FetchError(refusal);
  }
  return url;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * The response of a GET or HEAD of `text`, redirects followed (each checked
 * like the first URL). The caller consumes or destroys the body.
 */
export async function openUrl(text: string, method: 'GET' | 'HEAD', o: FetchOptions): Promise<{ res: IncomingMessage; url: URL }> {
  const lookup = guardedLookup(o.allowed);
  let url = checkedUrl(text, o.allowed);
  for (let hop = 0; ; hop++) {
    const res = await send(url, method, lookup, o.signal);
    const location = res.headers.location;
    if (!REDIRECTS.has(res.statusCode ?? 0) || location === undefined) {
      if ((res.statusCode ?? 0) < 200 || (res.statusCode ?? 0) > 299) {
        res.destroy();
        throw new FetchError(`${url.href} answered HTTP ${res.statusCode ?? '?'}`);
      }
      return { res, url };
    }
    res.destroy();
    if (hop >= (o.maxRedirects ?? MAX_REDIRECTS)) throw new FetchError(`more than ${o.maxRedirects ?? MAX_REDIRECTS} redirects`);
    let next: string;
    try {
      next = new URL(location, url).href;
    } catch {
      throw new FetchError(`a redirect to an invalid location ${JSON.stringify(location.slice(0, 200))}`);
    }
    try {
      url = checkedUrl(next, o.allowed);
    } catch (e) {
      throw new FetchError(`redirect refused: ${(e as Error).message}`);
    }
  }
}

function send(url: URL, method: string, lookup: LookupFunction, signal: AbortSignal | undefined): Promise<IncomingMessage> {
  const options: RequestOptions = {
    method,
    lookup,
    // A fresh socket per request: a kept-alive one would skip the lookup of a redirect's host.
    agent: false,
    headers: { 'user-agent': 'imgr', accept: '*/*' },
    ...(signal ? { signal } : {}),
  };
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, options, resolve);
    req.on('error', (e: Error & { code?: string }) => {
      if (e instanceof FetchError) reject(e);
      else if (e.name === 'AbortError') reject(new FetchError(`download of ${url.href} stopped: its deadline passed`));
      else reject(new FetchError(`${url.href}: ${e.message}`));
    });
    req.end();
  });
}

/**
 * GET `text` into the file `to` (created 0600, never through an existing
 * file), at most `maxBytes` of it when given: a body that goes on past what
 * the image was registered with is cut, not left to fill the staging disk.
 */
export async function downloadTo(text: string, to: string, o: FetchOptions & { readonly maxBytes?: number }): Promise<{ bytes: number; url: URL }> {
  const { res, url } = await openUrl(text, 'GET', o);
  let bytes = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      if (o.maxBytes !== undefined && bytes > o.maxBytes) done(new FetchError(`${url.href} sent more than the ${o.maxBytes} bytes the image was registered with`));
      else done(null, chunk);
    },
  });
  try {
    await pipeline(res, counted, createWriteStream(to, { flags: 'wx', mode: 0o600 }), o.signal ? { signal: o.signal } : {});
  } catch (e) {
    if (e instanceof FetchError) throw e;
    throw new FetchError(`download of ${url.href} failed: ${(e as Error).message}`);
  }
  return { bytes, url };
}

/** The Content-Length a HEAD of `text` announces (redirects followed), or null when there is none. */
export async function contentLength(text: string, o: FetchOptions): Promise<number | null> {
  const { res } = await openUrl(text, 'HEAD', o);
  res.resume();
  const len = res.headers['content-length'];
  return len !== undefined && /^\d+$/.test(len) ? Number(len) : null;
}
