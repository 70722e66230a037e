import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import { BadRequestError, UnsupportedMediaTypeError } from '../errors.ts';
import { jsonNestsDeeperThan, MAX_JSON_DEPTH } from '../protocol/limits.ts';
import { readBody } from './http.ts';

/**
 * A JSON request body, checked before anything reads it: declared as JSON (which a browser's "simple"
 * cross-origin POST cannot be), at most `limit` bytes, valid UTF-8 (never silently patched with U+FFFD
 * and then billed), nested no deeper than every hop accepts, and parseable.
 */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  checkJsonContentType(req.headers['content-type']);
  const body = await readBody(req, limit);
  if (!isUtf8(body)) {
    throw new BadRequestError('The request body is not valid UTF-8.', null, 'invalid_utf8');
  }
  if (jsonNestsDeeperThan(body, MAX_JSON_DEPTH)) {
    throw new BadRequestError(
      `The JSON body nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep.`,
      null,
      'json_too_deep',
    );
  }
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new BadRequestError(
      'We could not parse the JSON body of your request. The body must be valid JSON.',
      null,
      'invalid_json',
    );
  }
}

/** `application/json`, optionally with `charset=utf-8`; anything else is a 415. */
function checkJsonContentType(header: string | undefined): void {
  const [type, ...params] = (header ?? '').split(';').map((p) => p.trim().toLowerCase());
  const charset = params
    .find((p) => p.startsWith('charset='))
    ?.slice(8)
    .replace(/"/g, '');
  if (type === 'application/json' && (charset === undefined || charset === 'utf-8' || charset === 'utf8'))
    return;
  throw new UnsupportedMediaTypeError(
    header === undefined
      ? "The request has no Content-Type; send the JSON body with 'Content-Type: application/json'."
      : `Unsupported Content-Type ${JSON.stringify(header.slice(0, 100))}; send the JSON body with 'Content-Type: application/json'.`,
  );
}
