/**
 * The purge of a case's tier I data (bulletin 8.5e; closing, expiry and the receipt call it
 * through CaseServiceDeps.purge). Crypto-shredding first: the case's keys are destroyed, and
 * since every tier I row, packet segment and export file of the case is sealed with them
 * (sealed.ts, keys.ts), whatever copy survives from then on is unreadable: a part the engine has
 * not removed from disk yet (old_parts_lifetime, 60 s), a backup, a copy of the data directory.
 * Then every `tally_restricted` table drops the case's partition. The register keeps what was
 * done; nothing of the records is kept.
 *
 * Idempotent: dropping a partition that does not exist is not an error, and destroying keys
 * already destroyed changes nothing. A purge that fails after the keys are gone has left only
 * unreadable rows, and the next purge drops them.
 */
import type { Purger } from '../cases/workflow.ts'
import type { Store } from '../store/client.ts'
import { CaseKeysRepository } from './case-keys-repository.ts'
import { RESTRICTED_TABLES } from './common.ts'

/**
 * The statements that drop a case's partitions. On a cluster the tables under the usual names
 * are Distributed, which cannot drop partitions: the Replicated `_local` tables are, on every
 * node. The partition value stays a bound parameter.
 */
export function purgeStatements(cluster?: string): string[] {
  return RESTRICTED_TABLES.map((table) =>
    cluster === undefined
      ? `ALTER TABLE tally_restricted.${table} DROP PARTITION {case_id:String}`
      : `ALTER TABLE tally_restricted.${table}_local ON CLUSTER ${cluster} DROP PARTITION {case_id:String}`,
  )
}

export function createPurger(store: Store, cluster?: string): Purger {
  const keys = new CaseKeysRepository(store)
  return async (caseId: string) => {
    await keys.destroyAll(caseId, Date.now())
    for (const query of purgeStatements(cluster)) {
      try {
        await store.command({ query, query_params: { case_id: caseId } })
      } catch (err) {
        // Older engines answer a drop of an absent partition with an error: nothing to purge.
        if (
          !/NO_SUCH_DATA_PART|partition .* doesn't exist|not found/i.test((err as Error).message)
        ) {
          throw err
        }
      }
    }
  }
}
