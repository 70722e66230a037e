export {
  type Collateral,
  type CollateralSource,
  collateralFmspc,
  collateralNextUpdate,
  FileCollateral,
  PCCS_DEFAULTS,
  PccsCollateral,
  type PccsLimits,
} from './collateral.ts';
export { tdxImageHash } from './measurements.ts';
export { fetchPccsCollateral } from './pccs.ts';
export {
  MAX_PCK_CHAIN_BYTES,
  MAX_TDX_QUOTE_BYTES,
  type ParsedTdxQuote,
  type PlatformId,
  parseTdxQuote,
  verifyQuoteSignatures,
} from './quote.ts';
export { ConfigfsTsm, TdxAttestationProvider } from './tdx-provider.ts';
export { TdxAttestationVerifier, type TdxVerifierOptions } from './tdx-verifier.ts';
