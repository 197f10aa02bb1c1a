/** A test HTTP server on 127.0.0.1 (port 0): the stand-in for the internet in download tests. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

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
