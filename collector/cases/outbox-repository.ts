/** `tally.outbox`: the notices queued for delivery, one row per version of each message. */
import { z } from 'zod'
import type { Store } from '../store/client.ts'
import { insertRows, selectParsed } from '../store/rows.ts'

export const OutboxMessage = z.object({
  message_id: z.string(),
  case_id: z.string(),
  /** 'smtp' or 'webhook': the channel configured when it was queued. */
  channel: z.string(),
  recipient: z.string(),
  subject: z.string(),
  body: z.string(),
  created_at: z.number(),
  delivered_at: z.number().nullable(),
  attempts: z.number(),
  /** Empty once delivered, else why the last attempt failed. */
  last_error: z.string(),
  version: z.number(),
})
export type OutboxMessage = z.output<typeof OutboxMessage>

const COLUMNS = `message_id, case_id, channel, recipient, subject, body,
  toUnixTimestamp64Milli(created_at) AS created_at,
  if(delivered_at IS NULL, NULL, toUnixTimestamp64Milli(delivered_at)) AS delivered_at,
  attempts, last_error, version`

export class OutboxRepository {
  readonly #store: Store

  constructor(store: Store) {
    this.#store = store
  }

  /** Writes the messages as they are now (a newer version replaces the older). */
  async save(messages: readonly OutboxMessage[]): Promise<void> {
    await insertRows(
      this.#store,
      'tally.outbox',
      messages.map((m) => ({ ...m })),
    )
  }

  /** Messages not delivered yet that have been tried fewer than `maxAttempts` times. */
  async pending(maxAttempts: number): Promise<OutboxMessage[]> {
    return selectParsed(
      this.#store,
      OutboxMessage,
      `SELECT ${COLUMNS} FROM tally.outbox AS o FINAL
       WHERE o.delivered_at IS NULL AND o.attempts < {max:UInt32}`,
      { max: maxAttempts },
    )
  }

  async ofCase(caseId: string): Promise<OutboxMessage[]> {
    return selectParsed(
      this.#store,
      OutboxMessage,
      `SELECT ${COLUMNS} FROM tally.outbox AS o FINAL WHERE o.case_id = {id:String}
       ORDER BY o.created_at`,
      { id: caseId },
    )
  }
}
