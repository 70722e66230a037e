import { CocoonError } from '../errors.ts';

/** A peer's certificate or attestation was refused. `code` is the stable reason (counted in stats). */
export class AttestationError extends CocoonError {
  constructor(code: string, message: string) {
    super(403, 'permission_error', code, message);
  }
}
