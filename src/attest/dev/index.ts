export { DevAttestationProvider, DevAttestationVerifier } from './dev-attestation.ts';
