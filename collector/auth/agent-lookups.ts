/**
 * Agent credential lookups gathered into one query while the previous one runs.
 *
 * Every ingest request authenticates its agent against tally.agents (FINAL, so a revocation
 * counts at once). The embedded engine runs one query at a time, so a thousand requests a second
 * each with its own lookup would queue behind one another and behind the group inserts. Here at
 * most one lookup query is in flight; the credentials that arrive meanwhile wait for the next one,
 * which reads them all. Each answer is read fresh from the store, never cached: a revoked agent
 * is refused from the next query on, as with one lookup per request.
 */
import type { Store } from '../store/client.ts'
import { type AgentIdentity, authenticateAgents } from './agents.ts'

interface Waiting {
  credential: string
  answer: (identity: AgentIdentity | undefined) => void
  fail: (err: unknown) => void
}

export class AgentLookups {
  readonly #store: Store
  #waiting: Waiting[] = []
  #running = false

  constructor(store: Store) {
    this.#store = store
  }

  authenticate = (credential: string): Promise<AgentIdentity | undefined> =>
    new Promise((answer, fail) => {
      this.#waiting.push({ credential, answer, fail })
      if (!this.#running) {
        this.#running = true
        // The rest of this turn's requests join the first query.
        setImmediate(() => void this.#drain())
      }
    })

  async #drain(): Promise<void> {
    while (this.#waiting.length > 0) {
      const round = this.#waiting
      this.#waiting = []
      try {
        const identities = await authenticateAgents(
          this.#store,
          round.map((w) => w.credential),
        )
        round.forEach((w, i) => {
          w.answer(identities[i])
        })
      } catch (err) {
        for (const w of round) w.fail(err)
      }
    }
    this.#running = false
  }
}
