/**
 * A real browser for web-page tests: playwright-core driving the system's Chromium (Debian `chromium`, installed by
 * .ci/run). There is no skip: a machine without a browser fails these tests with a message that says what to install.
 */
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

const CANDIDATES = [process.env.GRAFT_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/** Path of the Chromium binary the tests drive; throws with the install command when none is found. */
export function chromiumPath(): string {
  for (const path of CANDIDATES) if (path && existsSync(path)) return path;
  throw new Error(
    'no Chromium found for the browser tests (looked at $GRAFT_CHROMIUM, /usr/bin/chromium, /usr/bin/chromium-browser, /usr/bin/google-chrome). ' +
      'Install it with `apt-get install chromium` (.ci/run does), or set GRAFT_CHROMIUM to a Chromium/Chrome binary.',
  );
}

/** Launches a headless Chromium; close it with `browser.close()` in an `after` hook. */
export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath(), headless: true, args: ['--no-sandbox', '--disable-gpu'] });
}
