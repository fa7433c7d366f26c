/**
 * docs/operators.md is the configuration reference: every setting of the collector and the agent
 * is in it, with the environment variable that overrides it, so a setting added to a schema
 * without its documentation fails here.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import type { z } from 'zod'
import { AgentConfig, loadAgentConfig } from '../../agent/config.ts'
import { CollectorConfig, loadCollectorConfig } from '../../collector/config.ts'
import { envName } from '../../common/config.ts'

const doc = readFileSync(new URL('../../docs/operators.md', import.meta.url), 'utf8')

interface Def {
  type: string
  innerType?: z.ZodType
  shape?: Record<string, z.ZodType>
}
const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def

/** Every leaf setting of a configuration schema, as its dotted path. */
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

describe.each([
  ['collector', CollectorConfig, loadCollectorConfig],
  ['agent', AgentConfig, loadAgentConfig],
] as const)('the %s settings in docs/operators.md', (_, schema, load) => {
  const all = settings(schema)

  it('finds the settings', () => {
    expect(all.length).toBeGreaterThan(15)
  })

  it.each(all)('%s is documented with its environment variable', (path) => {
    expect(doc).toContain(`| \`${path}\``)
    const row = doc.split('\n').find((line) => line.startsWith(`| \`${path}\``)) as string
    if (fromEnvironment(load, path)) expect(row).toContain(`\`${envName(path.split('.'))}\``)
    else expect(row).toContain('file only')
  })
})
