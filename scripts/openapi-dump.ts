/**
 * Prints the collector's OpenAPI document (with the default configuration's body caps) as JSON
 * with sorted keys, so two versions of the generator can be compared with diff.
 */
import { bodyCaps } from '../collector/body-caps.ts'
import { CollectorConfig } from '../collector/config.ts'
import { openApiDocument } from '../collector/openapi.ts'

const sorted = (value: unknown): unknown =>
  Array.isArray(value)
    ? value.map(sorted)
    : value !== null && typeof value === 'object'
      ? Object.fromEntries(
          Object.entries(value)
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
            .map(([k, v]) => [k, sorted(v)]),
        )
      : value

const config = CollectorConfig.parse({})
process.stdout.write(`${JSON.stringify(sorted(openApiDocument(bodyCaps(config))), null, 1)}\n`)
