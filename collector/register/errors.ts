/**
 * The register's refusals, as DomainErrors so that app.onError answers them; each keeps a class
 * of its own because callers branch on it (the server's start on RegisterIntegrityError, the
 * append batch on telling an integrity refusal once).
 */
import { DomainError } from '../errors.ts'

export { RegisterUnavailable } from '../errors.ts'

/** The stored chain does not verify, so the register refuses to sign a checkpoint over it. */
export class RegisterIntegrityError extends DomainError {
  override name = 'RegisterIntegrityError'
  /** The first entry that does not verify. */
  readonly seq: number
  constructor(seq: number, message: string) {
    super('conflict', 'register_does_not_verify', message)
    this.seq = seq
  }
}

export class CheckpointNotFound extends DomainError {
  override name = 'CheckpointNotFound'
  constructor(message: string) {
    super('not_found', 'not_found', message)
  }
}

/** A countersignature whose key is not Ed25519 or whose signature does not verify. */
export class BadCountersignature extends DomainError {
  override name = 'BadCountersignature'
  constructor(message: string) {
    super('invalid', 'bad_countersignature', message)
  }
}

/** A size the register's tree does not have (asked beyond its head, or below 0). */
export class SizeBeyondHead extends DomainError {
  override name = 'SizeBeyondHead'
  constructor(message: string) {
    super('conflict', 'beyond_head', message)
  }
}
