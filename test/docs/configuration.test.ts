/**
 * docs/configuration.md is generated from the configuration schemas (scripts/config-docs.ts): the
 * committed page must be what the schemas give today, every setting must carry a description,
 * and the page must list every setting the schemas accept with the variable that overrides it.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import type { z } from 'zod'
import { AgentConfig, loadAgentConfig } from '../../agent/config.ts'
import { CollectorConfig, loadCollectorConfig } from '../../collector/config.ts'
import { envName } from '../../common/config.ts'
import {
  CONFIGURATION_DOC,
  renderConfigurationDoc,
  settingsOf,
  undescribed,
} from '../../scripts/config-docs.ts'

const doc = readFileSync(CONFIGURATION_DOC, 'utf8')

interface Def {
  type: string
  innerType?: z.ZodType
  shape?: Record<string, z.ZodType>
}
const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def

/** Every leaf setting of a configuration schema, as its dotted path, read off zod's own tree. */
function settings(schema: z.ZodType, path: string[] = []): string[] {
  let def = defOf(schema)
  while (['optional', 'default', 'prefault', 'nullable'].includes(def.type) && def.innerType)
    def = defOf(def.innerType)
  if (def.type !== 'object') return [path.join('.')]
  return Object.entries(def.shape ?? {}).flatMap(([key, value]) => settings(value, [...path, key]))
}

/** Whether the environment can set this path: the loader names the variable when it is bad. */
function fromEnvironment(load: (file?: string, env?: NodeJS.ProcessEnv) => unknown, path: string) {
  const name = envName(path.split('.'))
  try {
    load(undefined, { [name]: '{not: [a, setting]}' })
    return false
  } catch (err) {
    return (err as Error).message.includes(name)
  }
}

describe('docs/configuration.md', () => {
  it('every setting and group of both schemas has a description', () => {
    // A name here: add .describe('...') to that setting in collector/config.ts or agent/config.ts.
    expect(undescribed()).toEqual([])
  })

  it('is the page the schemas generate (else run `npm run docs:config` and commit it)', () => {
    const generated = renderConfigurationDoc()
    if (doc !== generated) {
      expect.fail(
        'docs/configuration.md differs from what scripts/config-docs.ts generates from the config schemas: run `npm run docs:config` and commit docs/configuration.md',
      )
    }
  })
})

describe.each([
  ['collector', CollectorConfig, loadCollectorConfig],
  ['agent', AgentConfig, loadAgentConfig],
] as const)('the %s settings in docs/configuration.md', (name, schema, load) => {
  const all = settings(schema)

  it('finds the settings, and the generator finds the same ones', () => {
    expect(all.length).toBeGreaterThan(15)
    expect(settingsOf(name).map((s) => s.path)).toEqual(expect.arrayContaining(all))
    expect(settingsOf(name)).toHaveLength(all.length)
  })

  it.each(all)('%s is documented with its environment variable', (path) => {
    const row = doc.split('\n').find((line) => line.startsWith(`| \`${path}\` |`))
    expect(row, `no row for ${path}`).toBeDefined()
    if (fromEnvironment(load, path)) expect(row).toContain(`\`${envName(path.split('.'))}\``)
    else expect(row).toContain('file only')
  })
})
