// Prints the rows of one query against a collector's embedded engine, as a JSON array.
import { openStore } from '../../collector/store/client.ts'

const [dataDir, sql] = process.argv.slice(2)
if (dataDir === undefined || sql === undefined)
  throw new Error('usage: query-store.ts DATA_DIR SQL')
const store = openStore({ dataDir })
const rows = await (await store.query({ query: sql, format: 'JSONEachRow' })).json()
process.stdout.write(JSON.stringify(rows))
await store.close()
