import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The content hash of a model directory: a Merkle root over its files, so the weights a worker serves can
 * be named in `name@revision:hash` and allow-listed in the root contract (the original uses a dm-verity
 * root; this is the same idea over files, reproducible on any machine).
 *
 * Construction (all hashes SHA-256):
 * - files: every regular file under DIR, recursively; symlinks and other special files are refused (a
 *   link could point outside the tree); empty directories contribute nothing;
 * - path: relative, '/'-separated, UTF-8; files sorted by path bytes;
 * - leaf = H("cocoon-model-leaf-v1" ‖ u32be(len(path)) ‖ path ‖ u64be(size) ‖ H(content)), content hashed
 *   streaming, so multi-GB weights are never held in memory;
 * - node = H(0x01 ‖ left ‖ right); an odd node at the end of a level is carried up unchanged;
 * - no files: H("cocoon-model-empty-v1").
 */
export async function modelDirectoryHash(
  dir: string,
): Promise<{ hash: string; files: number; bytes: bigint }> {
  const st = await lstat(dir).catch(() => null);
  if (!st) throw new Error(`no such directory: ${dir}`);
  if (!st.isDirectory()) throw new Error(`not a directory: ${dir}`);
  const files: { path: string; size: bigint }[] = [];
  await walk(dir, '', files);
  files.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  let level: Buffer[] = [];
  let bytes = 0n;
  for (const f of files) {
    bytes += f.size;
    level.push(await leaf(join(dir, f.path), f.path, f.size));
  }
  if (level.length === 0) {
    return { hash: createHash('sha256').update('cocoon-model-empty-v1').digest('hex'), files: 0, bytes: 0n };
  }
  while (level.length > 1) {
    const next: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) {
      const r = level[i + 1];
      next.push(
        r
          ? createHash('sha256')
              .update(Buffer.from([1]))
              .update(level[i]!)
              .update(r)
              .digest()
          : level[i]!,
      );
    }
    level = next;
  }
  return { hash: level[0]!.toString('hex'), files: files.length, bytes };
}

async function walk(root: string, rel: string, out: { path: string; size: bigint }[]): Promise<void> {
  for (const e of await readdir(join(root, rel), { withFileTypes: true })) {
    const path = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) await walk(root, path, out);
    else if (e.isFile()) out.push({ path, size: (await lstat(join(root, path), { bigint: true })).size });
    else throw new Error(`refusing ${path}: not a regular file or directory (symlinks are not followed)`);
  }
}

async function leaf(file: string, path: string, size: bigint): Promise<Buffer> {
  const content = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }))
    content.update(chunk as Buffer);
  const p = Buffer.from(path);
  const head = Buffer.alloc(12);
  head.writeUInt32BE(p.length, 0);
  head.writeBigUInt64BE(size, 4);
  return createHash('sha256')
    .update('cocoon-model-leaf-v1')
    .update(head.subarray(0, 4))
    .update(p)
    .update(head.subarray(4))
    .update(content.digest())
    .digest();
}

/** `name@revision:hash` (hash: 64 lowercase hex), or a bare name (no identity). */
export interface ModelIdentity {
  name: string;
  revision: string | null;
  hash: string | null;
}

export function parseModelIdentity(s: string): ModelIdentity {
  const at = s.indexOf('@');
  if (at < 0) return { name: s, revision: null, hash: null };
  const m = /^([^@]+)@([^:@]+):([0-9a-f]{64})$/.exec(s);
  if (!m) throw new Error(`not a model identity: '${s}' (expected name@revision:<64 hex>)`);
  return { name: m[1]!, revision: m[2]!, hash: m[3]! };
}

export function formatModelIdentity(name: string, revision: string, hash: string): string {
  return `${name}@${revision}:${hash}`;
}

/** The identity (`name@revision:hash`, or the bare name) under which certificate claims attest `model`. */
export function attestedModel(claims: { models?: string[] }, model: string): string | undefined {
  return claims.models?.find((m) => m === model || m.startsWith(`${model}@`));
}
