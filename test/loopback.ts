/** A test HTTP server on 127.0.0.1 (port 0): the stand-in for the internet in download tests, and the static site of browser tests. */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

/** Starts `handler` on a free loopback port; resolves with the server and its base URL (`http://127.0.0.1:<port>`). */
export async function startLoopback(handler: http.RequestListener): Promise<{ server: http.Server; base: string }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** Stops a loopback server at once, dropping any connection still open (a stalled transfer under test). */
export function stopLoopback(server: http.Server | undefined): void {
  server?.closeAllConnections();
  server?.close();
}

const MIME: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
};

/**
 * A handler that serves the files under `root` as a static site (a web bundle for a browser test): `/` and folders
 * answer with their index.html, anything outside `root`, missing or not a file is a 404.
 */
export function serveFolder(root: string): http.RequestListener {
  return (req, res) => {
    const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = path.join(root, rel.endsWith('/') ? `${rel}index.html` : rel);
    if (!file.startsWith(root) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': MIME[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  };
}
