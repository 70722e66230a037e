// Compiles contracts/*.tolk and prints each contract's code hash and size (npm run build:contracts).
import { CONTRACT_NAMES, compileContract } from '../src/chain/contracts/code.ts';

let failed = false;
for (const name of CONTRACT_NAMES) {
  try {
    const code = await compileContract(name);
    const boc = code.toBoc();
    console.log(`${name.padEnd(6)} ${code.hash().toString('hex')}  ${boc.length} bytes`);
  } catch (err) {
    failed = true;
    console.error(err instanceof Error ? err.message : err);
  }
}
process.exit(failed ? 1 : 0);
