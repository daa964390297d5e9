import { createServer } from 'node:http';

/** A local HTTP server answering every request with `content`: the URL a registration downloads from. */
export async function serveBytes(content: Buffer): Promise<{ url: string; close: () => void }> {
  const server = createServer((_req, res) => res.writeHead(200, { 'content-length': String(content.length) }).end(content));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  return { url: `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}/disk.raw`, close: () => server.close() };
}
