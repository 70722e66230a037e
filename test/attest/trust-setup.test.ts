import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { trustSetup } from '../../src/attest/trust-setup.ts';
import { collateralPath, PINNED, tdxQuote, tdxReportData } from './vectors.ts';

const cacheDir = () => join(mkdtempSync(join(tmpdir(), 'cocoon-trust-')), 'collateral');

test('a dev node given collateral also verifies TDX quotes (a client on a laptop checking TDX workers)', async () => {
  const setup = trustSetup('dev', {
    collateralFile: collateralPath,
    collateralCacheDir: cacheDir(),
    now: () => PINNED,
  });
  assert.equal(setup.provider.kind, 'dev', 'its own attestation stays the labelled software one');
  assert.deepEqual([...setup.verifiers.keys()].sort(), ['dev', 'tdx']);
  const verified = await setup.verifiers.get('tdx')!.verify(tdxQuote, tdxReportData);
  assert.equal(verified.tier, 'tee-cpu');
});

test('a dev node without collateral verifies dev quotes only; a tdx node never accepts them', () => {
  assert.deepEqual([...trustSetup('dev').verifiers.keys()], ['dev']);
  assert.deepEqual([...trustSetup('dev', { collateralCacheDir: cacheDir() }).verifiers.keys()], ['dev']);
  const tdx = trustSetup('tdx', { collateralFile: collateralPath, collateralCacheDir: cacheDir() });
  assert.deepEqual([...tdx.verifiers.keys()], ['tdx']);
});
