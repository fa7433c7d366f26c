/** What the tier I modules share: the tables, addresses, the register and the grants on record. */
import { createHash } from 'node:crypto'
import { isIPv4, isIPv6 } from 'node:net'
import type { Case } from '../cases/model.ts'
import type { RegisterWriter } from '../cases/workflow.ts'
import { RegisterUnavailable } from '../errors.ts'

/** Every table of `tally_restricted`: each is partitioned by case_id, each is purged. */
export const RESTRICTED_TABLES = ['flows', 'dns', 'web', 'pcap_segments', 'exports'] as const

/** The one text form of an address: IPv4 dotted quad, IPv6 compressed lower case. */
export function normalizeAddress(address: string): string | undefined {
  if (isIPv4(address))
    return address
      .split('.')
      .map((o) => String(Number(o)))
      .join('.')
  if (isIPv6(address) && !address.includes('%')) {
    try {
      return new URL(`http://[${address}]/`).hostname.slice(1, -1)
    } catch {
      return undefined
    }
  }
  return undefined
}

/** Which register a case's entries go to: OIOS keeps its own record (9.2d). */
export const registerOf = (doc: Pick<Case, 'kind'> | undefined): 'itsd' | 'oios' =>
  doc?.kind === 'oios' ? 'oios' : 'itsd'

export type RegisterEntry = Parameters<RegisterWriter['append']>[0]

/** Appends, turning any failure into RegisterUnavailable (fail closed). */
export async function record(register: RegisterWriter, entry: RegisterEntry): Promise<void> {
  try {
    await register.append(entry)
  } catch (err) {
    if (err instanceof RegisterUnavailable) throw err
    throw new RegisterUnavailable(`the ${entry.kind} entry could not be appended`, { cause: err })
  }
}

export const sha256Hex = (bytes: Uint8Array | string): string =>
  createHash('sha256').update(bytes).digest('hex')
