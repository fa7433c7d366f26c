/**
 * The key behind hosts' identities in site usage. A contribution carries HMAC-SHA256(key, agent
 * id), never a host name or an agent id, so the uniq states of the usage tables count distinct
 * hosts without naming them: whoever can read those states but not this file (Grafana's user,
 * a ClickHouse server's disk) cannot test whether a host it knows (tally.agents lists them) is
 * in a cell, since it cannot compute the value that host would have added.
 *
 * One key per collector data directory, made at first start (32 random bytes, mode 0600,
 * written atomically). Collectors sharing one store must share the key file, or one host
 * reaching two collectors in a minute counts twice.
 */
import { createHmac, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { readStateFile, writeFileAtomic } from '../../common/atomic-file.ts'

const USAGE_HOST_KEY_FILE = 'usage-host.key'

const KEY_BYTES = 32

export interface UsageHostKey {
  /** The keyed id a host's contributions carry. */
  idOf(agentId: string): string
}

/** The key of the collector whose data directory is `dataDir`, made there if missing. */
export function loadOrCreateUsageHostKey(dataDir: string): UsageHostKey {
  const file = join(dataDir, USAGE_HOST_KEY_FILE)
  const read = () =>
    readStateFile(file, {
      parse: (data) => {
        const key = Buffer.from(data.toString('utf8').trim(), 'base64')
        if (key.length !== KEY_BYTES) throw new Error(`a ${KEY_BYTES}-byte key in base64 is needed`)
        return key
      },
      remedy:
        'restore it from a backup, or delete it to start a new one (hosts of the minutes not yet released are then counted twice)',
    })
  let key = read()
  if (key === undefined) {
    key = randomBytes(KEY_BYTES)
    writeFileAtomic(file, `${key.toString('base64')}\n`, 0o600)
  }
  const secret = key
  return { idOf: (agentId) => createHmac('sha256', secret).update(agentId).digest('base64url') }
}
