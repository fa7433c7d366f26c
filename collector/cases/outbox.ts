/**
 * Notices to people (8.5a before access, 8.5f at closing, 8.2 for technical cases): queued in
 * `tally.outbox` and delivered by webhook or SMTP when one is configured. A notice counts as
 * given only once delivered.
 */
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { Person } from '../../protocol/api/cases.ts'
import type { Store } from '../store/client.ts'
import { type OutboxMessage, OutboxRepository } from './outbox-repository.ts'

export interface OutboxConfig {
  webhook_url?: string | undefined
  smtp?: { host: string; port: number; from: string; secure: boolean } | undefined
}

export type { OutboxMessage } from './outbox-repository.ts'

/** After this many failed attempts a message is no longer retried. */
const MAX_ATTEMPTS = 20

export class OutboxUnavailable extends Error {
  override name = 'OutboxUnavailable'
}

export class Outbox {
  readonly #messages: OutboxRepository
  readonly #config: OutboxConfig
  readonly #log: Logger

  constructor(store: Store, config: OutboxConfig, log: Logger) {
    this.#messages = new OutboxRepository(store)
    this.#config = config
    this.#log = log
  }

  get configured(): boolean {
    return this.#config.webhook_url !== undefined || this.#config.smtp !== undefined
  }

  /** Queues one message per person and tries to deliver them now. Returns their ids. */
  async send(
    caseId: string,
    to: Person[],
    subject: string,
    body: string,
    now = Date.now(),
  ): Promise<OutboxMessage[]> {
    if (!this.configured) {
      throw new OutboxUnavailable(
        'no outbox channel is configured (cases.outbox.webhook_url or cases.outbox.smtp)',
      )
    }
    const channel = this.#config.smtp !== undefined ? 'smtp' : 'webhook'
    const messages: OutboxMessage[] = to.map((person) => ({
      message_id: `m-${randomBytes(8).toString('hex')}`,
      case_id: caseId,
      channel,
      recipient: person.email ?? person.name,
      subject,
      body,
      created_at: now,
      delivered_at: null,
      attempts: 0,
      last_error: '',
      version: now,
    }))
    await this.#messages.save(messages)
    return Promise.all(messages.map((m) => this.#deliver(m)))
  }

  /** Retries what is not delivered yet (called periodically). */
  async deliverPending(): Promise<void> {
    const pending = await this.#messages.pending(MAX_ATTEMPTS)
    for (const message of pending) await this.#deliver(message)
  }

  async messages(caseId: string): Promise<OutboxMessage[]> {
    return this.#messages.ofCase(caseId)
  }

  async #deliver(message: OutboxMessage): Promise<OutboxMessage> {
    let error = ''
    try {
      if (message.channel === 'smtp' && this.#config.smtp !== undefined)
        await this.#smtp(message, this.#config.smtp)
      else if (this.#config.webhook_url !== undefined)
        await this.#webhook(message, this.#config.webhook_url)
      else throw new Error(`no ${message.channel} channel configured`)
    } catch (err) {
      error = (err as Error).message
      this.#log.warn(
        { message_id: message.message_id, case_id: message.case_id, err: error },
        'notice not delivered',
      )
    }
    const now = Date.now()
    const updated: OutboxMessage = {
      ...message,
      attempts: message.attempts + 1,
      delivered_at: error === '' ? now : null,
      last_error: error,
      version: Math.max(now, message.version + 1),
    }
    await this.#messages.save([updated])
    return updated
  }

  async #webhook(message: OutboxMessage, url: string): Promise<void> {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        message_id: message.message_id,
        case_id: message.case_id,
        to: message.recipient,
        subject: message.subject,
        body: message.body,
      }),
      signal: AbortSignal.timeout(10_000),
    })
    if (!response.ok) throw new Error(`webhook answered ${response.status}`)
  }

  async #smtp(message: OutboxMessage, smtp: NonNullable<OutboxConfig['smtp']>): Promise<void> {
    const { createTransport } = await import('nodemailer')
    const transport = createTransport({ host: smtp.host, port: smtp.port, secure: smtp.secure })
    await transport.sendMail({
      from: smtp.from,
      to: message.recipient,
      subject: message.subject,
      text: message.body,
    })
  }
}
