/**
 * The dashboard in real headless Chromium (Debian's chromium driven by
 * playwright-core): it loads, shows a registered image, and follows it live
 * when the image changes state.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { eventually } from '../support/eventually.js';
import { startSystem, type TestSystem } from '../support/system.js';
import type { ImgrClient } from '../../src/client/index.js';
import { LiveViews } from '../../src/api/views.js';
import { buildApi } from '../../src/api/api.js';

let sys: TestSystem;
let c: ImgrClient;
let views: LiveViews;
let app: FastifyInstance;
let browser: Browser;
let url: string;

beforeAll(async () => {
  sys = await startSystem({ actor: { uid: 7, gid: 100, name: 'alice' } });
  c = sys.client;
  views = await LiveViews.start(await sys.nats.connect('dashboard'));
  app = buildApi({ views });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const a = app.server.address();
  url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}/`;
  browser = await chromium.launch({
    executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

afterAll(async () => {
  await browser.close();
  await app.close();
  views.stop();
  await sys.stop();
});

describe('dashboard', () => {
  it('shows datastores and images, and follows an image live', async () => {
    const ds = await c.nextId('datastore');
    await sys.admin.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'images', DS_MAD: 'fs', TM_MAD: 'shared' } });
    const id = await c.nextId('image');
    await c.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: 'ubuntu-web', PATH: '/tmp/a', SIZE: '64' } });
    await eventually(() => views.images.get(id)?.state === 'READY', 'projected');

    const page = await browser.newPage();
    await page.goto(url);
    const state = page.locator(`tr[data-id="${id}"] td.state`);
    await state.waitFor();
    expect(await page.locator(`tr[data-id="${id}"]`).innerText()).toContain('ubuntu-web');
    expect(await state.getAttribute('data-state')).toBe('READY');
    await page.locator(`[data-datastore="${ds}"]`).waitFor();
    await page.locator('#live.on').waitFor();

    await c.send({ type: 'image.disable', imageId: id });
    await page.locator(`tr[data-id="${id}"] td.state[data-state="DISABLED"]`).waitFor();
    await page.locator('#feed li', { hasText: 'image.disabled' }).first().waitFor();

    await page.locator(`tr[data-id="${id}"]`).click();
    await page.locator('#timeline li', { hasText: 'image.disabled' }).waitFor();
    expect(await page.locator('#timeline li').count()).toBe(3);
    // IMGR_SCREENSHOT=/tmp/dashboard.png keeps a picture of what a person would see.
    const shot = process.env['IMGR_SCREENSHOT'];
    if (shot !== undefined) await page.screenshot({ path: shot });
    await page.close();
  });
});
