import { randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { z } from 'zod';
import { AuthenticationError, BadRequestError, MethodNotAllowedError } from '../errors.ts';
import { readBody, sendError, sendJson } from '../ops/http.ts';

/**
 * The worker's admin endpoint, beside its stats: take the worker out of routing and back, or change its
 * price coefficient, live (the proxies are told at once). Callers prove they can read the worker's data
 * directory: they send the token kept there (`admin-token`, mode 0600) as a bearer token.
 *
 *   POST /admin/disable            POST /admin/enable            POST /admin/coefficient {"coefficient":1500}
 */

export const ADMIN_TOKEN_FILE = 'admin-token';

export interface AdminTarget {
  setEnabled(enabled: boolean): void;
  setCoefficient(coefficient: number): void;
  adminStatus(): { enabled: boolean; coefficient: number };
}

/** The token in `<dataDir>/admin-token`, made on first use. */
export async function loadOrCreateAdminToken(dataDir: string): Promise<string> {
  const path = join(dataDir, ADMIN_TOKEN_FILE);
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dataDir, { recursive: true });
  const token = randomBytes(32).toString('hex');
  await writeFile(`${path}.tmp`, `${token}\n`, { mode: 0o600 });
  await rename(`${path}.tmp`, path);
  return token;
}

const coefficientBody = z.object({ coefficient: z.number().int().min(0).max(1_000_000_000) });

/** Routes for `listenStats`: handles `/admin/*`, returns false for anything else. */
export function adminRoutes(target: AdminTarget, token: string) {
  const expected = Buffer.from(`Bearer ${token}`);
  const authorized = (req: IncomingMessage) => {
    const got = Buffer.from(req.headers.authorization ?? '');
    return got.length === expected.length && timingSafeEqual(got, expected);
  };
  return (req: IncomingMessage, res: ServerResponse): boolean => {
    const path = req.url?.split('?')[0] ?? '';
    if (!path.startsWith('/admin/')) return false;
    void (async () => {
      if (req.method !== 'POST') throw new MethodNotAllowedError(req.method ?? '?', path);
      if (!authorized(req))
        throw new AuthenticationError(
          "Send the worker's admin token (<data-dir>/admin-token) as a bearer token.",
        );
      if (path === '/admin/enable' || path === '/admin/disable') {
        target.setEnabled(path === '/admin/enable');
      } else if (path === '/admin/coefficient') {
        let body: unknown;
        try {
          body = JSON.parse((await readBody(req, 4096)).toString('utf8'));
        } catch {
          throw new BadRequestError(
            'The body must be JSON: {"coefficient": <integer, 1000 = 1x>}.',
            null,
            'invalid_json',
          );
        }
        const parsed = coefficientBody.safeParse(body);
        if (!parsed.success) {
          throw new BadRequestError(
            'coefficient must be an integer from 0 to 1000000000 (1000 = 1x).',
            'coefficient',
          );
        }
        target.setCoefficient(parsed.data.coefficient);
      } else {
        sendJson(res, 404, {
          error: {
            message: `Unknown admin action: ${path}.`,
            type: 'invalid_request_error',
            param: null,
            code: 'unknown_url',
          },
        });
        return;
      }
      sendJson(res, 200, target.adminStatus());
    })().catch((err) => sendError(res, err));
    return true;
  };
}
