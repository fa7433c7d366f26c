/**
 * What the collector runs at run time on a cluster (clickhouse.cluster set): the purge drops
 * partitions of tables that the cluster layout really has, on every node, and the k views are
 * created on every node.
 */
import { describe, expect, it } from 'vitest'
import { CollectorConfig } from '../../collector/config.ts'
import { purgeStatements } from '../../collector/restricted/purge.ts'
import { onClusterView, renderClusterMigrations } from '../../collector/store/cluster.ts'
import { readMigrations } from '../../collector/store/migrations.ts'
import { usageViewSql } from '../../collector/store/usage.ts'
import { USAGE_DIMENSIONS } from '../../protocol/api/names.ts'

const CLUSTER = 'tally'
const clusterSql = renderClusterMigrations(readMigrations(), CLUSTER)
  .flatMap((m) => m.statements)
  .join('\n')

describe('on a cluster', () => {
  it('purges the Replicated _local tables the layout creates, ON CLUSTER, with the case bound', () => {
    const statements = purgeStatements(CLUSTER)
    expect(statements.length).toBeGreaterThanOrEqual(4)
    for (const sql of statements) {
      const match =
        /^ALTER TABLE (tally_restricted\.\w+_local) ON CLUSTER tally DROP PARTITION \{case_id:String\}$/.exec(
          sql,
        )
      expect(match, sql).not.toBeNull()
      const table = match?.[1] ?? ''
      expect(clusterSql, `${table} exists in the cluster layout`).toMatch(
        new RegExp(
          `CREATE TABLE IF NOT EXISTS ${table.replace('.', '\\.')} ON CLUSTER tally[\\s\\S]*?Replicated`,
        ),
      )
    }
  })

  it('purges the plain tables on one server', () => {
    for (const sql of purgeStatements()) {
      expect(sql).toMatch(/^ALTER TABLE tally_restricted\.\w+ DROP PARTITION \{case_id:String\}$/)
      expect(sql).not.toContain('_local')
    }
  })

  it('creates the k views on every node', () => {
    for (const by of USAGE_DIMENSIONS) {
      const sql = onClusterView(usageViewSql(by, 5), CLUSTER)
      expect(sql).toMatch(
        new RegExp(`^CREATE OR REPLACE VIEW tally\\.usage_by_${by} ON CLUSTER tally`),
      )
    }
  })

  it('takes the cluster name from clickhouse.cluster, and refuses one that is not a name', () => {
    expect(CollectorConfig.parse({ clickhouse: { cluster: 'tally' } }).clickhouse.cluster).toBe(
      'tally',
    )
    expect(
      CollectorConfig.safeParse({ clickhouse: { cluster: 'tally; DROP TABLE x' } }).success,
    ).toBe(false)
  })
})
