/**
 * Renders docs/configuration.md from the configuration schemas: each setting's path, type,
 * default, environment variable and description, as the schemas say them (their zod
 * descriptions, through z.toJSONSchema). A setting without a description is an error, so the
 * reference cannot be silently incomplete.
 *
 *   node scripts/config-docs.ts           writes docs/configuration.md  (npm run docs:config)
 *   node scripts/config-docs.ts --check   exits 1 when the committed file differs
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { z } from 'zod'
import { AgentConfig, loadAgentConfig } from '../agent/config.ts'
import { CollectorConfig, loadCollectorConfig } from '../collector/config.ts'
import { envName } from '../common/config.ts'

export const CONFIGURATION_DOC = fileURLToPath(new URL('../docs/configuration.md', import.meta.url))

/** The part of a JSON Schema this page reads. */
interface JsonSchema {
  type?: string
  description?: string
  default?: unknown
  enum?: unknown[]
  format?: string
  minimum?: number
  maximum?: number
  exclusiveMinimum?: number
  properties?: Record<string, JsonSchema>
  items?: JsonSchema
}

/** One leaf setting, or a group of them (an object in the file). */
export interface Setting {
  path: string
  type: string
  default: string
  /** The variable that overrides it, or undefined when only the file can set it. */
  environment: string | undefined
  description: string | undefined
}

interface Group {
  path: string
  description: string | undefined
  settings: Setting[]
}

type Loader = (file?: string, env?: NodeJS.ProcessEnv) => unknown

interface Program {
  name: 'collector' | 'agent'
  schema: z.ZodType
  load: Loader
  example: string
  intro: string
}

const PROGRAMS: Program[] = [
  {
    name: 'collector',
    schema: CollectorConfig,
    load: loadCollectorConfig,
    example: 'deploy/collector.yaml',
    intro:
      'Changes to `usage.k`, the outbox and the grant limits (`cases.*`) are entries on the ITSD register at the next start. Where the key files belong on a site, and what losing one means: [operators.md](operators.md#keys-outside-the-data-directory).',
  },
  {
    name: 'agent',
    schema: AgentConfig,
    load: loadAgentConfig,
    example: 'deploy/agent.yaml',
    intro: 'Installing agents on the hosts: [operators.md](operators.md).',
  },
]

/**
 * Whether the environment can set this path. The loader is asked, not a copy of its rules: a
 * value that does not parse names its variable only when the loader read that variable.
 */
function environmentOf(load: Loader, path: string): string | undefined {
  const name = envName(path.split('.'))
  try {
    load(undefined, { [name]: '{not: [a, setting]}' })
    return undefined
  } catch (err) {
    return (err as Error).message.includes(name) ? name : undefined
  }
}

const MiB = 1024 * 1024

function typeOf(schema: JsonSchema): string {
  if (schema.enum !== undefined) return schema.enum.map((v) => `\`${String(v)}\``).join(', ')
  if (schema.type === 'array') return `list of ${typeOf(schema.items ?? {})}s`
  if (schema.format === 'email') return 'email address'
  if (schema.type !== 'integer' && schema.type !== 'number') return schema.type ?? 'any'
  const { minimum, maximum, exclusiveMinimum } = schema
  const low = minimum !== undefined && minimum > Number.MIN_SAFE_INTEGER ? minimum : undefined
  const high = maximum !== undefined && maximum < Number.MAX_SAFE_INTEGER ? maximum : undefined
  if (low !== undefined && high !== undefined) return `${schema.type}, ${low} to ${high}`
  if (exclusiveMinimum !== undefined) return `${schema.type} > ${exclusiveMinimum}`
  if (low !== undefined) return `${schema.type} ≥ ${low}`
  if (high !== undefined) return `${schema.type} ≤ ${high}`
  return schema.type
}

function defaultOf(path: string, value: unknown): string {
  if (value === undefined) return 'unset'
  if (value === '') return 'empty'
  if (Array.isArray(value)) return `\`[${value.map(String).join(', ')}]\``
  const shown = `\`${String(value)}\``
  if (path.endsWith('_bytes') && typeof value === 'number' && value % MiB === 0)
    return `${shown} (${value / MiB} MiB)`
  return shown
}

/** Groups in the order of the schema; top-level settings form the group with an empty path. */
function groupsOf(program: Program): Group[] {
  const root = z.toJSONSchema(program.schema, { io: 'input' }) as JsonSchema
  const groups: Group[] = []
  const walk = (schema: JsonSchema, prefix: string[], group: Group) => {
    for (const [key, property] of Object.entries(schema.properties ?? {})) {
      const path = [...prefix, key]
      if (property.type === 'object' && property.properties !== undefined) {
        const nested: Group = {
          path: path.join('.'),
          description: property.description,
          settings: [],
        }
        groups.push(nested)
        walk(property, path, nested)
        continue
      }
      group.settings.push({
        path: path.join('.'),
        type: typeOf(property),
        default: defaultOf(key, property.default),
        environment: environmentOf(program.load, path.join('.')),
        description: property.description,
      })
    }
  }
  const top: Group = { path: '', description: undefined, settings: [] }
  groups.push(top)
  walk(root, [], top)
  return groups.filter((g) => g.settings.length > 0 || g.description !== undefined)
}

/** Every setting and group of both programs without a description, by program and path. */
export function undescribed(): string[] {
  return PROGRAMS.flatMap((program) =>
    groupsOf(program).flatMap((group) => [
      ...(group.path !== '' && group.description === undefined
        ? [`${program.name}: ${group.path}`]
        : []),
      ...group.settings
        .filter((s) => s.description === undefined)
        .map((s) => `${program.name}: ${s.path}`),
    ]),
  )
}

/** Every leaf setting of a program, for the tests. */
export function settingsOf(name: Program['name']): Setting[] {
  const program = PROGRAMS.find((p) => p.name === name) as Program
  return groupsOf(program).flatMap((g) => g.settings)
}

const cell = (text: string): string => text.replaceAll('|', '\\|').replaceAll('\n', ' ')

function table(settings: Setting[]): string[] {
  return [
    '| setting | type | default | environment | description |',
    '| --- | --- | --- | --- | --- |',
    ...settings.map(
      (s) =>
        `| \`${s.path}\` | ${cell(s.type)} | ${cell(s.default)} | ${s.environment === undefined ? 'file only' : `\`${s.environment}\``} | ${cell(s.description ?? '')} |`,
    ),
  ]
}

function section(program: Program): string[] {
  const lines = [
    `## The ${program.name}`,
    '',
    `${program.intro} [${program.example}](../${program.example}) is an example file with every setting.`,
    '',
  ]
  for (const group of groupsOf(program)) {
    if (group.path !== '') {
      lines.push(`### \`${group.path}\``, '')
      if (group.description !== undefined) lines.push(group.description, '')
    } else {
      lines.push('### Top level', '')
    }
    if (group.settings.length > 0) lines.push(...table(group.settings), '')
  }
  return lines
}

const PREAMBLE = `<!-- Generated by scripts/config-docs.ts from the settings' descriptions in collector/config.ts and agent/config.ts: edit those, then run \`npm run docs:config\`. -->

# Configuration

Both programs read an optional YAML file (\`--config FILE\`, or \`-c FILE\`); an empty file is
valid, since every setting has a default or may stay unset. A setting is named by its path in
the file: \`listen.port\` is

\`\`\`yaml
listen:
  port: 9090
\`\`\`

Every setting also has an environment override named after its path, \`TALLY_\` and the path in
capitals with \`_\` for \`.\` (\`clickhouse.url\` is \`TALLY_CLICKHOUSE_URL\`), except those marked
"file only" below. Values from the environment are read as YAML (\`9000\` is a number,
\`[10.0.0.0/8, 192.168.0.0/16]\` a list) and win over the file; an empty variable means the
default. A value that does not fit is reported with the variable's name.

\`tally collector check -c FILE\` and \`tally agent check -c FILE\` apply the same rules as \`run\`,
say exactly what is wrong, one line per problem, or print the settings in effect with every
password, token, key and URL credential hidden.
`

/** The whole page; throws naming every setting without a description. */
export function renderConfigurationDoc(): string {
  const missing = undescribed()
  if (missing.length > 0)
    throw new Error(`settings without a description (add .describe()): ${missing.join(', ')}`)
  const body = PROGRAMS.flatMap(section)
  return `${PREAMBLE}\n${body.join('\n').trimEnd()}\n`
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const page = renderConfigurationDoc()
  if (process.argv.includes('--check')) {
    if (readFileSync(CONFIGURATION_DOC, 'utf8') !== page) {
      process.stderr.write('docs/configuration.md is out of date: run `npm run docs:config`\n')
      process.exit(1)
    }
  } else {
    writeFileSync(CONFIGURATION_DOC, page)
  }
}
