export {
  type Collateral,
  type CollateralSource,
  collateralNextUpdate,
  FileCollateral,
  PccsCollateral,
} from './collateral.ts';
export { tdxImageHash } from './measurements.ts';
export { ConfigfsTsm, TdxAttestationProvider } from './tdx-provider.ts';
export { TdxAttestationVerifier, type TdxVerifierOptions } from './tdx-verifier.ts';
