/**
 * Prints, as JSON, the grants ClickHouse itself computes from deploy/clickhouse/users.d/tally.xml:
 * an embedded engine (chDB) is started in a fresh directory with a configuration whose users
 * are that file (beside a minimal users.xml), and asked SHOW GRANTS. Run in its own process
 * (chDB binds one data directory per process): `node test/security/engine-grants.ts DIR`.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Session } from 'chdb'

const dir = process.argv[2]
if (dir === undefined) throw new Error('usage: engine-grants.ts DIR')
mkdirSync(join(dir, 'users.d'), { recursive: true })
copyFileSync(
  new URL('../../deploy/clickhouse/users.d/tally.xml', import.meta.url),
  join(dir, 'users.d', 'tally.xml'),
)
writeFileSync(
  join(dir, 'users.xml'),
  '<clickhouse><profiles><default/></profiles><quotas><default/></quotas>' +
    '<users><default><password/><networks><ip>::1</ip></networks><profile>default</profile>' +
    '<quota>default</quota><access_management>1</access_management></default></users></clickhouse>',
)
writeFileSync(
  join(dir, 'config.xml'),
  `<clickhouse><user_directories><users_xml><path>${join(dir, 'users.xml')}</path></users_xml></user_directories></clickhouse>`,
)
const session = new Session(join(dir, 'data'), {
  connectionArgs: [`--config-file=${join(dir, 'config.xml')}`],
})
const lines = (query: string) =>
  session
    .query(query, 'TSV')
    .split('\n')
    .filter((line) => line !== '')
const answer = {
  users: lines('SELECT name FROM system.users ORDER BY name'),
  grafana_ro: lines('SHOW GRANTS FOR grafana_ro'),
  tally_reader: lines('SHOW GRANTS FOR tally_reader'),
}
session.cleanup()
process.stdout.write(`${JSON.stringify(answer)}\n`)
