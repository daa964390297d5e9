/**
 * A burst of monitor requests for one datastore (every copy asks for one)
 * sends one at once and one trailing monitor at the end of the window, so
 * the burst's last copy is still followed by a probe; datastores do not
 * share windows.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MonitorCoalescer } from '../../src/reactors/monitor-coalescer.js';
import { eventually } from '../support/eventually.js';

const sent: string[] = [];
const coalescer = new MonitorCoalescer(200, (ds, requestId) => {
  sent.push(`${ds}:${requestId}`);
  return Promise.resolve();
}, () => undefined);

afterEach(() => {
  coalescer.stop();
  sent.length = 0;
});

describe('MonitorCoalescer', () => {
  it('turns a burst into the first request and one trailing request carrying the last id', async () => {
    for (let i = 1; i <= 50; i++) await coalescer.request(7, `mon-${i}`, i);
    await coalescer.request(8, 'mon-other', 51);
    expect(sent).toEqual(['7:mon-1', '8:mon-other']);
    await eventually(() => sent.length === 3, 'the trailing monitor');
    expect(sent[2]).toBe('7:mon-50');
  });

  it('sends a request at once when no window is open, and sends nothing trailing for a lone request', async () => {
    await coalescer.request(9, 'mon-a', 1);
    expect(sent).toEqual(['9:mon-a']);
    await new Promise((r) => setTimeout(r, 400));
    expect(sent).toEqual(['9:mon-a']);
    await coalescer.request(9, 'mon-b', 2);
    expect(sent).toEqual(['9:mon-a', '9:mon-b']);
  });
});
