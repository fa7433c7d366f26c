/**
 * The agent's copy of ITSD's register head. Each grants poll brings the collector's latest
 * signed head and an RFC 6962 proof that it extends the head kept here; the agent checks both
 * (the signature with the pinned register key, the proof against the kept root) and keeps the
 * new head only when they hold. A register cut below the kept size, or rewritten under it, even
 * re-signed with the register's own key, cannot give such a proof: the agent then keeps its old
 * head, logs it and reports tally.agent.register.inconsistent = 1 in its health, at every poll.
 *
 * The register key is pinned from the first head the agent sees (trust on first use: agents
 * enrolled before heads were served have no other way to learn it), in the same file.
 */
import { join } from 'node:path'
import { readStateFile, writeFileAtomic } from '../common/atomic-file.ts'
import { Mutex } from '../common/mutex.ts'
import { headExtends } from '../common/register-verify/audit.ts'
import { KeyRing } from '../common/register-verify/keys.ts'
import { RegisterHead, type RegisterHeadAnswer } from '../protocol/v1.ts'

export const registerHeadPath = (stateDir: string): string => join(stateDir, 'register-head.json')

interface KeptRegisterHead {
  /** The register's public key (JWK), pinned on first use. */
  public_key: Record<string, string>
  head: RegisterHead
}

export type HeadObservation =
  | { status: 'none' }
  | { status: 'kept'; size: number; first: boolean }
  | { status: 'inconsistent'; problem: string; message: string }

interface HeadLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  error(obj: object, msg: string): void
}

export class RegisterHeadWatch {
  readonly #file: string
  readonly #log: HeadLog | undefined
  #kept: KeptRegisterHead | undefined
  #inconsistent = false
  #lastProblem = ''
  // The check awaits WebCrypto: two polls overlapping must not both prove from the same kept head.
  readonly #observing = new Mutex()

  constructor(stateDir: string, log?: HeadLog) {
    this.#file = registerHeadPath(stateDir)
    this.#log = log
    this.#kept = readStateFile(this.#file, {
      parse: (data) => {
        const v = JSON.parse(data.toString('utf8')) as Partial<KeptRegisterHead> | null
        const head = RegisterHead.safeParse(v?.head)
        if (!head.success || typeof v?.public_key?.x !== 'string') {
          throw new Error('not a kept register head')
        }
        return { public_key: v.public_key, head: head.data }
      },
      remedy:
        'restore it; removing it makes the agent trust the next head and key it sees (and lose what the old head proves)',
    })
  }

  /** The size of the kept head, sent with the grants poll (0: none yet). */
  get keptSize(): number {
    return this.#kept?.head.size ?? 0
  }

  /** 1 while the latest head the collector gave does not extend the kept one. */
  get inconsistent(): boolean {
    return this.#inconsistent
  }

  /**
   * Checks the head a grants poll brought (with the register's shared verifier,
   * common/register-verify/); keeps it when it extends the kept one.
   */
  observe(answer: RegisterHeadAnswer | undefined): Promise<HeadObservation> {
    if (answer === undefined) return Promise.resolve({ status: 'none' })
    return this.#observing.run(() => this.#check(answer))
  }

  async #check(answer: RegisterHeadAnswer): Promise<HeadObservation> {
    const first = this.#kept === undefined
    const key = this.#kept?.public_key ?? answer.public_key
    const problem = (name: string, message: string): HeadObservation => {
      this.#inconsistent = true
      // Said once per kind of problem, not at every poll: the metric says it every interval.
      if (this.#lastProblem !== name) {
        this.#lastProblem = name
        this.#log?.error(
          { problem: name, kept_size: this.keptSize, head_size: answer.head.size },
          `the collector's register head does not extend the one this agent kept: ${message}`,
        )
      }
      return { status: 'inconsistent', problem: name, message }
    }
    if (!first && answer.public_key.x !== key.x) {
      return problem(
        'key-changed',
        'the collector signs with another register key than the one pinned here',
      )
    }
    const failure = await headExtends(
      new KeyRing(),
      this.#kept?.head,
      answer.head,
      answer.proof,
      key,
    )
    if (failure !== undefined) return problem(failure.kind, failure.message)
    const kept: KeptRegisterHead = { public_key: key, head: answer.head }
    // Written before it counts as kept: a crash leaves the old head or the new one.
    writeFileAtomic(this.#file, `${JSON.stringify(kept)}\n`, 0o600)
    this.#kept = kept
    if (this.#inconsistent) {
      this.#log?.warn({ head_size: answer.head.size }, 'the register head is consistent again')
    }
    this.#inconsistent = false
    this.#lastProblem = ''
    if (first) {
      this.#log?.info(
        { head_size: answer.head.size, key_id: answer.public_key.kid },
        'register key pinned on first use, with its head',
      )
    }
    return { status: 'kept', size: answer.head.size, first }
  }
}
