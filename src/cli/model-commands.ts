import type { Command } from 'commander';
import { formatModelIdentity, modelDirectoryHash } from '../attest/model-identity.ts';

/** `cocoon model-hash DIR`: the content hash a worker's model identity `name@revision:hash` carries. */
export function registerModelCommands(program: Command): void {
  program
    .command('model-hash <dir>')
    .description('content hash of a model directory (Merkle root over its files), for name@revision:hash')
    .option('--name <name>', 'model name, to print the full identity')
    .option('--revision <rev>', 'model revision (default main)')
    .option('--json', 'machine-readable output')
    .action(async (dir: string, o: { name?: string; revision?: string; json?: boolean }) => {
      let r: Awaited<ReturnType<typeof modelDirectoryHash>>;
      try {
        r = await modelDirectoryHash(dir);
      } catch (err) {
        process.stderr.write(`cocoon: ${(err as Error).message}\n`);
        process.exit(1);
      }
      const identity = o.name ? formatModelIdentity(o.name, o.revision ?? 'main', r.hash) : null;
      if (o.json) {
        process.stdout.write(
          `${JSON.stringify({ hash: r.hash, identity, files: r.files, bytes: r.bytes.toString() })}\n`,
        );
        return;
      }
      process.stdout.write(`${r.hash}\n`);
      if (identity) process.stdout.write(`identity  ${identity}\n`);
      process.stdout.write(`files     ${r.files}, ${r.bytes} bytes\n`);
    });
}
