import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cell } from '@ton/core';
import { runTolkCompiler } from '@ton/tolk-js';

/**
 * Contract code, compiled from `contracts/*.tolk` on first use. The result is memoized in-process and
 * cached on disk under a key that covers every contract source and the compiler version, so a daemon
 * start or a test run compiles only after a source changed.
 */

export type ContractName = 'root' | 'client' | 'worker' | 'proxy';
export const CONTRACT_NAMES: readonly ContractName[] = ['root', 'client', 'worker', 'proxy'];

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CONTRACTS_DIR = join(REPO_ROOT, 'contracts');
const CACHE_DIR = join(REPO_ROOT, 'node_modules', '.cache', 'cocoon-contracts');

const memo = new Map<ContractName, Promise<Cell>>();
let sourcesKey: Promise<string> | undefined;

export function loadContractCode(name: ContractName): Promise<Cell> {
  let code = memo.get(name);
  if (!code) {
    code = loadOrCompile(name);
    memo.set(name, code);
    code.catch(() => memo.delete(name)); // a failed compile is retried on the next call
  }
  return code;
}

async function loadOrCompile(name: ContractName): Promise<Cell> {
  const cacheFile = join(CACHE_DIR, `${name}-${await contractSourcesKey()}.boc`);
  const cached = await readFile(cacheFile).catch(() => undefined);
  if (cached) return Cell.fromBoc(cached)[0]!;
  const code = await compileContract(name);
  await mkdir(CACHE_DIR, { recursive: true });
  const tmp = `${cacheFile}.${process.pid}.tmp`; // write-then-rename: concurrent runs never read half a file
  await writeFile(tmp, code.toBoc());
  await rename(tmp, cacheFile);
  return code;
}

/** Compiles `contracts/<name>.tolk` now, without the caches. */
export async function compileContract(name: ContractName): Promise<Cell> {
  const result = await runTolkCompiler({
    entrypointFileName: `${name}.tolk`,
    // the compiler asks for files by their path relative to the entry point, synchronously
    fsReadCallback: (path) => readFileSync(join(CONTRACTS_DIR, path), 'utf8'),
  });
  if (result.status === 'error')
    throw new Error(`compiling contracts/${name}.tolk failed:\n${result.message}`);
  return Cell.fromBase64(result.codeBoc64);
}

/** sha256 (hex) over every contract source, by name, and the compiler version. */
function contractSourcesKey(): Promise<string> {
  sourcesKey ??= (async () => {
    const hash = createHash('sha256').update(`tolk-js ${tolkVersion()}\n`);
    const files = (await readdir(CONTRACTS_DIR)).filter((f) => f.endsWith('.tolk')).sort();
    for (const file of files) {
      hash.update(`${file}\n`).update(await readFile(join(CONTRACTS_DIR, file)));
    }
    return hash.digest('hex');
  })();
  return sourcesKey;
}

function tolkVersion(): string {
  const require = createRequire(import.meta.url);
  return (require('@ton/tolk-js/package.json') as { version: string }).version;
}
