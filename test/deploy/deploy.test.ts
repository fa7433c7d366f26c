/**
 * The deployment files (deploy/, docs/operators.md) as their readers will read them: every file
 * parses (YAML, systemd units, ClickHouse XML), what the compose files mount or build exists,
 * ports and addresses agree with the collector's configuration, users and grants keep tier I
 * away from every reader but the collector, and the cluster's nodes, macros and Keeper agree with each other.
 * There is no container engine here: nothing is started.
 */
import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseAllDocuments, parse as parseYaml } from 'yaml'
import { loadAgentConfig } from '../../agent/config.ts'
import { CollectorConfig, loadCollectorConfig } from '../../collector/config.ts'
import { at, child, parseUnit, parseXml, type Unit, unitValue, type XmlElement } from './parsers.ts'

const ROOT = resolve(new URL('../../', import.meta.url).pathname)
const path = (...parts: string[]) => join(ROOT, ...parts)
const read = (...parts: string[]) => readFileSync(path(...parts), 'utf8')

type Tree = { [key: string]: unknown }
const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v)
const tree = (v: unknown, what: string): Tree => {
  if (!isTree(v)) throw new Error(`${what} is not a mapping`)
  return v
}

function filesUnder(dir: string, test: (name: string) => boolean): string[] {
  const out: string[] = []
  for (const entry of readdirSync(path(dir), { withFileTypes: true })) {
    const rel = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...filesUnder(rel, test))
    else if (test(entry.name)) out.push(rel)
  }
  return out.sort()
}

const yamlFiles = filesUnder('deploy', (n) => /\.ya?ml$/.test(n))
const xmlFiles = filesUnder('deploy', (n) => n.endsWith('.xml'))
const unitFiles = filesUnder('deploy', (n) => n.endsWith('.service'))
const loadYaml = (file: string): Tree => tree(parseYaml(read(file), { merge: true }), file)
const loadXml = (file: string): XmlElement => parseXml(read(file))

describe('every deploy file parses', () => {
  it('finds the files it checks', () => {
    expect(yamlFiles).toEqual(
      expect.arrayContaining([
        'deploy/compose.yaml',
        'deploy/cluster/compose.cluster.yaml',
        'deploy/collector.yaml',
        'deploy/agent.yaml',
      ]),
    )
    expect(xmlFiles.length).toBeGreaterThanOrEqual(10)
    expect(unitFiles).toEqual([
      'deploy/systemd/tally-agent.service',
      'deploy/systemd/tally-collector.service',
    ])
  })

  it.each(yamlFiles)('YAML: %s', (file) => {
    const docs = parseAllDocuments(read(file), { merge: true, uniqueKeys: true })
    const list = Array.isArray(docs) ? docs : [docs]
    for (const doc of list) expect(doc.errors, file).toEqual([])
  })

  it.each(xmlFiles)('ClickHouse XML: %s', (file) => {
    expect(loadXml(file).name).toBe('clickhouse')
  })

  it.each(unitFiles)('systemd unit: %s', (file) => {
    const unit = parseUnit(read(file))
    expect([...unit.keys()]).toEqual(['Unit', 'Service', 'Install'])
    for (const [section, key] of [
      ['Unit', 'Description'],
      ['Service', 'ExecStart'],
      ['Service', 'User'],
      ['Service', 'Group'],
      ['Service', 'StateDirectory'],
      ['Service', 'ReadWritePaths'],
      ['Service', 'NoNewPrivileges'],
      ['Service', 'ProtectSystem'],
      ['Install', 'WantedBy'],
    ] as const) {
      expect(unitValue(unit, section, key), `${file}: ${section}.${key}`).toBeTruthy()
    }
    expect(unitValue(unit, 'Service', 'NoNewPrivileges')).toBe('yes')
    expect(unitValue(unit, 'Service', 'ProtectSystem')).toBe('strict')
    const state = unitValue(unit, 'Service', 'StateDirectory') as string
    expect(unitValue(unit, 'Service', 'ReadWritePaths')?.split(/\s+/)).toContain(
      `/var/lib/${state}`,
    )
    // Node and V8 options may come between node and the program (the agent's small heap).
    expect(unitValue(unit, 'Service', 'ExecStart')).toMatch(
      /^\/usr\/bin\/node (--[\w-]+(=\S+)? )*\/opt\/tally\//,
    )
  })

  it('the unit parser refuses stray lines and repeated sections, joins continuations', () => {
    const parse = parseUnit
    expect(() => parse('User=x\n')).toThrow(/outside a section/)
    expect(() => parse('[Service]\nnot a pair\n')).toThrow(/Key=Value/)
    expect(() => parse('[Service]\n[Service]\n')).toThrow(/twice/)
    const unit = parse(
      '[Service]\n# c\nExecStart=/bin/a \\\n  b\nEnvironment=A=1\nEnvironment=B=2\n',
    )
    expect(unitValue(unit, 'Service', 'ExecStart')).toBe('/bin/a  b')
    expect(unit.get('Service')?.get('Environment')).toEqual(['A=1', 'B=2'])
  })

  it('the XML parser refuses malformed documents', () => {
    for (const bad of [
      '<clickhouse><a></b></clickhouse>',
      '<clickhouse><a></clickhouse>',
      '<clickhouse>&nbsp;</clickhouse>',
      '<clickhouse a="1" a="2"/>',
      '<clickhouse><!-- a -- b --></clickhouse>',
      '<clickhouse/><other/>',
      '<clickhouse x=1/>',
    ]) {
      expect(() => parseXml(bad), bad).toThrow()
    }
    const doc = parseXml(
      '<?xml version="1.0"?>\n<!-- c -->\n<c a="x &amp; y"><d>1 &lt; 2</d><e/></c>',
    )
    expect(doc.attributes.a).toBe('x & y')
    expect(at(doc, 'd').text).toBe('1 < 2')
    expect(child(doc, 'e')).toBeDefined()
  })

  it('systemd-analyze finds no unknown or invalid setting, where it is installed', (context) => {
    try {
      execFileSync('systemd-analyze', ['--version'], { stdio: 'ignore' })
    } catch {
      context.skip()
    }
    const dir = mkdtempSync(join(tmpdir(), 'tally-units-'))
    const copies = unitFiles.map((file) => {
      const copy = join(dir, file.split('/').at(-1) as string)
      copyFileSync(path(file), copy)
      return copy
    })
    let stderr = ''
    try {
      execFileSync('systemd-analyze', ['verify', '--man=no', ...copies], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    } catch (err) {
      stderr = String((err as { stderr?: string }).stderr ?? err)
    }
    // It also complains about what this machine lacks (users, /etc/tally); not about syntax.
    expect(stderr).not.toMatch(/Unknown (key|section)|Invalid|Failed to parse|Missing '='/i)
  })
})

describe('the example configurations stay valid', () => {
  it('deploy/collector/collector.yaml, the site config of the collector unit', () => {
    const config = loadCollectorConfig(path('deploy/collector/collector.yaml'), {})
    expect(config.data_dir).toBe(
      `/var/lib/${unitValue(unitOf('tally-collector'), 'Service', 'StateDirectory')}`,
    )
    expect(config.clickhouse.username).toBe('tally_collector')
    expect(config.clickhouse.password).toBe('')
    expect(read('deploy/collector/collector.env.example')).toMatch(/^TALLY_CLICKHOUSE_PASSWORD=/m)
  })

  it('deploy/collector.yaml and deploy/agent.yaml', () => {
    expect(loadCollectorConfig(path('deploy/collector.yaml'), {}).listen.port).toBe(8080)
    expect(loadAgentConfig(path('deploy/agent.yaml'), {}).collector.url).toBe(
      'http://127.0.0.1:8080',
    )
  })
})

const unitOf = (name: string): Unit => parseUnit(read(`deploy/systemd/${name}.service`))

describe('systemd units', () => {
  it('the agent captures with CAP_NET_RAW and nothing else, as its own user', () => {
    const unit = unitOf('tally-agent')
    expect(unitValue(unit, 'Service', 'User')).toBe('tally-agent')
    expect(unitValue(unit, 'Service', 'AmbientCapabilities')).toBe('CAP_NET_RAW')
    expect(unitValue(unit, 'Service', 'CapabilityBoundingSet')).toBe('CAP_NET_RAW')
    expect(unitValue(unit, 'Service', 'StateDirectory')).toBe('tally-agent')
    expect(unitValue(unit, 'Service', 'ExecStart')).toBe(
      '/usr/bin/node --max-semi-space-size=1 --optimize-for-size /opt/tally/tally-agent.mjs run --config /etc/tally/agent.yaml',
    )
    // tcpdump needs packet sockets; nothing else outside IP, Unix and netlink.
    expect(unitValue(unit, 'Service', 'RestrictAddressFamilies')?.split(/\s+/).sort()).toEqual(
      ['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_PACKET', 'AF_UNIX'].sort(),
    )
    // The agent's config names the unit's state directory; install.sh installs this unit.
    expect(loadAgentConfig(path('deploy/agent/agent.yaml'), {}).state_dir).toBe(
      '/var/lib/tally-agent',
    )
    const install = read('deploy/agent/install.sh')
    expect(install).toContain('systemd/$SERVICE.service')
    expect(install).toContain('/opt/tally/tally-agent.mjs'.replace('/opt/tally', '$PREFIX'))
  })

  it('the collector has no capability and runs the repository copy in /opt/tally', () => {
    const unit = unitOf('tally-collector')
    expect(unitValue(unit, 'Service', 'User')).toBe('tally-collector')
    expect(unitValue(unit, 'Service', 'CapabilityBoundingSet')).toBe('')
    expect(unitValue(unit, 'Service', 'AmbientCapabilities')).toBe('')
    expect(unitValue(unit, 'Service', 'ExecStart')).toBe(
      '/usr/bin/node /opt/tally/bin/tally.ts collector run --config /etc/tally/collector.yaml',
    )
    expect(existsSync(path('bin/tally.ts'))).toBe(true)
  })
})

/** `src:dst[:mode]` of a compose volume entry; src is a path when it starts with . or /. */
function mounts(service: Tree): { source: string; target: string; bind: boolean }[] {
  return ((service.volumes as unknown[]) ?? []).map((v) => {
    if (typeof v !== 'string')
      throw new Error(`long volume syntax not expected: ${JSON.stringify(v)}`)
    const [source = '', target = ''] = v.split(':')
    return { source, target, bind: source.startsWith('.') || source.startsWith('/') }
  })
}

const environment = (service: Tree): Record<string, string> =>
  Object.fromEntries(
    Object.entries(tree(service.environment ?? {}, 'environment')).map(([k, v]) => [k, String(v)]),
  )

/** ${VAR}, ${VAR:?msg}, ${VAR:-default} references of a compose file. */
const variables = (text: string): string[] => [
  ...new Set([...text.matchAll(/\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}/g)].map((m) => m[1] as string)),
]

/** A compose value with its ${...} replaced: defaults kept, required ones given a sample. */
const substitute = (value: string): string =>
  value.replace(/\$\{([A-Z0-9_]+)(?::-([^}]*)|:\?[^}]*)?\}/g, (_m, _name, fallback) =>
    fallback === undefined ? 'a1b2c3d4e5f6' : String(fallback),
  )

function checkCompose(file: string): Tree {
  const compose = loadYaml(file)
  const dir = dirname(path(file))
  const services = tree(compose.services, `${file}: services`)
  const volumes = tree(compose.volumes ?? {}, `${file}: volumes`)
  for (const [name, value] of Object.entries(services)) {
    const service = tree(value, `${file}: ${name}`)
    expect(service.image ?? service.build, `${file}: ${name} has an image or a build`).toBeTruthy()
    for (const m of mounts(service)) {
      if (m.bind) {
        expect(existsSync(resolve(dir, m.source)), `${file}: ${name} mounts ${m.source}`).toBe(true)
      } else {
        expect(Object.keys(volumes), `${file}: ${name} uses volume ${m.source}`).toContain(m.source)
      }
      expect(m.target.startsWith('/'), `${file}: ${name} mounts at ${m.target}`).toBe(true)
    }
    if (service.build !== undefined) {
      const build = tree(service.build, `${file}: ${name}.build`)
      const context = resolve(dir, String(build.context))
      expect(existsSync(join(context, String(build.dockerfile))), `${file}: ${name} build`).toBe(
        true,
      )
    }
    for (const [dependency, condition] of Object.entries(tree(service.depends_on ?? {}, 'dep'))) {
      const target = tree(services[dependency], `${file}: ${name} depends on ${dependency}`)
      const wanted = String(tree(condition, 'condition').condition)
      expect(['service_started', 'service_healthy', 'service_completed_successfully']).toContain(
        wanted,
      )
      if (wanted === 'service_healthy') {
        expect(target.healthcheck, `${file}: ${dependency} has a healthcheck`).toBeDefined()
      }
    }
  }
  // Every variable the file uses is in the .env.example next to it.
  const example = readFileSync(join(dir, '.env.example'), 'utf8')
  const declared = [...example.matchAll(/^([A-Z0-9_]+)=/gm)].map((m) => m[1])
  for (const name of variables(read(file))) expect(declared, `${file}: ${name}`).toContain(name)
  return compose
}

/** The service names and network aliases a host name may resolve to. */
function hostNames(services: Tree): Map<string, string> {
  const names = new Map<string, string>()
  for (const [name, value] of Object.entries(services)) {
    names.set(name, name)
    const networks = tree(value, name).networks
    if (isTree(networks)) {
      for (const net of Object.values(networks)) {
        for (const alias of (isTree(net) ? (net.aliases as string[]) : undefined) ?? []) {
          names.set(alias, name)
        }
      }
    }
  }
  return names
}

function checkCollectorService(compose: Tree, name: string): void {
  const services = tree(compose.services, 'services')
  const collector = tree(services[name], name)
  const env = environment(collector)
  const config = loadCollectorConfig(
    undefined,
    Object.fromEntries(Object.entries(env).map(([k, v]) => [k, substitute(v)])),
  )
  // The port it listens on: the config's default, the environment's, the published one.
  const defaults = CollectorConfig.parse({})
  expect(config.listen.port).toBe(defaults.listen.port)
  expect(config.listen.host).toBe('0.0.0.0')
  const published = (collector.ports as string[]).map((p) => p.split(':').at(-1))
  expect(published).toEqual([String(config.listen.port)])
  // It reaches ClickHouse's HTTP interface by a name of the compose network, as tally_collector.
  const url = new URL(config.clickhouse.url ?? '')
  const clickhouse = hostNames(services).get(url.hostname)
  expect(clickhouse, `${url.hostname} is a service`).toBeDefined()
  expect(String(tree(services[clickhouse as string], 'ch').image)).toMatch(
    /^clickhouse\/clickhouse-server:/,
  )
  expect(url.port).toBe('8123')
  expect(config.clickhouse.username).toBe('tally_collector')
  expect(env.TALLY_CLICKHOUSE_PASSWORD).toBe(
    environment(tree(services[clickhouse as string], 'ch')).TALLY_COLLECTOR_CH_PASSWORD,
  )
}

function checkGrafanaService(compose: Tree, file: string): void {
  const services = tree(compose.services, 'services')
  const grafana = tree(services.grafana, 'grafana')
  const env = environment(grafana)
  expect(String(grafana.image)).toMatch(/^grafana\/grafana:/)
  expect(env.GF_INSTALL_PLUGINS?.split(',')).toContain('grafana-clickhouse-datasource')
  const dir = dirname(path(file))
  const binds = mounts(grafana).filter((m) => m.bind)
  const provisioning = binds.find((m) => m.target === '/etc/grafana/provisioning')
  expect(provisioning, 'provisioning mounted').toBeDefined()
  const provisioningDir = resolve(dir, provisioning?.source ?? '')
  expect(relative(ROOT, provisioningDir)).toBe('dashboards/provisioning')

  // The data source: uid, plugin, a ClickHouse service of this file, user grafana_ro whose
  // password variable Grafana's environment provides.
  const datasources = tree(
    parseYaml(readFileSync(join(provisioningDir, 'datasources/clickhouse.yaml'), 'utf8')),
    'datasources',
  ).datasources as Tree[]
  const ds = datasources.find((d) => d.uid === 'tally-clickhouse')
  expect(ds?.type).toBe('grafana-clickhouse-datasource')
  const json = tree(ds?.jsonData, 'jsonData')
  const target = hostNames(services).get(String(json.host))
  expect(target, `data source host ${json.host}`).toBeDefined()
  expect(String(tree(services[target as string], 't').image)).toMatch(/clickhouse-server/)
  expect(Number(json.port)).toBe(8123)
  expect(json.username).toBe('grafana_ro')
  const password = String(tree(ds?.secureJsonData, 'secureJsonData').password)
  const variable = /^\$\{?([A-Z0-9_]+)\}?$/.exec(password)?.[1]
  expect(variable, 'the password comes from the environment').toBeDefined()
  expect(env[variable as string]).toBe(
    environment(tree(services[target as string], 't')).TALLY_GRAFANA_CH_PASSWORD,
  )

  // The dashboard provider's path is where the dashboards are mounted, and holds them.
  const providers = tree(
    parseYaml(readFileSync(join(provisioningDir, 'dashboards/tally.yaml'), 'utf8')),
    'providers',
  ).providers as Tree[]
  for (const provider of providers) {
    const where = String(tree(provider.options, 'options').path)
    const mount = binds.find((m) => where === m.target || where.startsWith(`${m.target}/`))
    expect(mount, `a mount serves ${where}`).toBeDefined()
    const served = join(resolve(dir, mount?.source ?? ''), where.slice(mount?.target.length ?? 0))
    expect(readdirSync(served).filter((f) => f.endsWith('.json')).length).toBeGreaterThan(0)
  }
}

describe('deploy/compose.yaml', () => {
  const file = 'deploy/compose.yaml'

  it('mounts and builds only what exists, with declared volumes and variables', () => {
    const compose = checkCompose(file)
    expect(Object.keys(tree(compose.services, 's')).sort()).toEqual([
      'clickhouse',
      'collector',
      'grafana',
    ])
    for (const service of Object.values(tree(compose.services, 's'))) {
      expect(tree(service, 's').healthcheck).toBeDefined()
    }
  })

  it("runs the collector on the config's port, against the ClickHouse service", () => {
    checkCollectorService(checkCompose(file), 'collector')
  })

  it('runs ClickHouse with Tally users and server settings, passwords from the environment', () => {
    const services = tree(checkCompose(file).services, 's')
    const clickhouse = tree(services.clickhouse, 'clickhouse')
    const targets = mounts(clickhouse).map((m) => m.target)
    expect(targets).toContain('/etc/clickhouse-server/users.d/tally.xml')
    expect(targets).toContain('/etc/clickhouse-server/config.d/tally.xml')
    expect(targets).toContain('/var/lib/clickhouse')
    const env = environment(clickhouse)
    expect(env.CLICKHOUSE_SKIP_USER_SETUP).toBe('1')
    for (const name of fromEnvNames(loadXml('deploy/clickhouse/users.d/tally.xml'))) {
      expect(env[name], name).toMatch(/^\$\{[A-Z0-9_]+:\?/)
    }
  })

  it('provisions Grafana with the ClickHouse plugin, the data source and the dashboards', () => {
    checkGrafanaService(checkCompose(file), file)
  })

  it('builds the collector from deploy/collector.Containerfile', () => {
    const build = tree(tree(tree(checkCompose(file).services, 's').collector, 'c').build, 'b')
    expect(resolve(dirname(path(file)), String(build.context))).toBe(ROOT)
    expect(build.dockerfile).toBe('deploy/collector.Containerfile')
  })
})

function fromEnvNames(element: XmlElement): string[] {
  const names: string[] = []
  const walk = (e: XmlElement) => {
    if (e.attributes.from_env !== undefined) names.push(e.attributes.from_env)
    e.children.forEach(walk)
  }
  walk(element)
  return names
}

/** The modules a source file loads at run time: static and dynamic imports, not `import type`. */
const runtimeImports = (source: string): string[] =>
  [
    ...source.matchAll(/^\s*(?:import|export)\s+(?!type\b)[^'";]*?from\s+'([^']+)'/gm),
    ...source.matchAll(/^\s*import\s+'([^']+)'/gm),
    ...source.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g),
  ].map((m) => m[1] as string)

/** The npm package a bare specifier names (`@scope/name` or `name`). */
const packageOf = (spec: string): string | undefined =>
  spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]

describe('deploy/collector.Containerfile', () => {
  const text = read('deploy/collector.Containerfile')
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.trim().startsWith('#'))
    .map((l) => {
      const [op = '', ...rest] = l.trim().split(/\s+/)
      return { op: op.toUpperCase(), args: rest.join(' ') }
    })
  const args = (op: string) => instructions.filter((i) => i.op === op).map((i) => i.args)

  it('is node:24-slim, production dependencies only, a non-root user, port 8080', () => {
    expect(args('FROM')).toEqual(['node:24-slim'])
    expect(args('RUN').join('\n')).toMatch(/npm ci --omit=dev/)
    const user = args('USER').at(-1) ?? ''
    expect(user).not.toMatch(/^(root|0)(:|$)/)
    expect(user).not.toBe('')
    expect(args('EXPOSE')).toEqual([String(CollectorConfig.parse({}).listen.port)])
    expect(args('ENTRYPOINT')).toEqual(['["node", "bin/tally.ts"]'])
    expect(text).not.toMatch(/apt-get install[^\n]*tcpdump/)
  })

  it('copies sources that exist, and the program imports nothing else', () => {
    const copied = args('COPY').flatMap((a) => a.split(/\s+/).slice(0, -1))
    for (const source of copied) expect(existsSync(path(source)), source).toBe(true)
    const dirs = copied.filter((s) => s.endsWith('/')).map((s) => s.slice(0, -1))
    const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string> }
    // Walk the static and dynamic imports from the entry point.
    const seen = new Set<string>()
    const queue = ['bin/tally.ts']
    while (queue.length > 0) {
      const file = queue.pop() as string
      if (seen.has(file)) continue
      seen.add(file)
      expect(dirs, `${file} is copied into the image`).toContain(file.split('/')[0])
      for (const spec of runtimeImports(read(file))) {
        if (spec.startsWith('.')) {
          const target = relative(ROOT, resolve(dirname(path(file)), spec))
          expect(existsSync(path(target)), `${file} imports ${spec}`).toBe(true)
          if (target.endsWith('.ts')) queue.push(target)
        } else if (!spec.startsWith('node:')) {
          expect(Object.keys(pkg.dependencies), `${file} imports ${spec}`).toContain(
            packageOf(spec),
          )
        }
      }
    }
    expect(seen.size).toBeGreaterThan(20)
  })
})

const usersXml = () => loadXml('deploy/clickhouse/users.d/tally.xml')
const grantsOf = (element: XmlElement): string[] =>
  (child(element, 'grants')?.children ?? []).map((q) => q.text)

describe('ClickHouse users and roles', () => {
  it('the collector writes tally and tally_restricted; passwords come from the environment', () => {
    const users = at(usersXml(), 'users')
    const collector = at(users, 'tally_collector')
    expect(at(collector, 'password').attributes.from_env).toBe('TALLY_COLLECTOR_CH_PASSWORD')
    expect(at(collector, 'password').text).toBe('')
    const roles = at(usersXml(), 'roles')
    const granted = grantsOf(collector).map((g) => /^GRANT (\w+)$/.exec(g)?.[1])
    expect(granted.sort()).toEqual(['tally_schema', 'tally_writer'])
    const writer = grantsOf(at(roles, 'tally_writer'))
    for (const db of ['tally', 'tally_restricted']) {
      expect(
        writer.some((g) => /\bINSERT\b/.test(g) && g.endsWith(`ON ${db}.*`)),
        db,
      ).toBe(true)
      expect(
        writer.some((g) => /\bSELECT\b/.test(g) && g.endsWith(`ON ${db}.*`)),
        db,
      ).toBe(true)
    }
  })

  it('grafana_ro reads tally, has no grant on tally_restricted, and is read-only', () => {
    const root = usersXml()
    const grafana = at(root, 'users', 'grafana_ro')
    expect(at(grafana, 'password').attributes.from_env).toBe('TALLY_GRAFANA_CH_PASSWORD')
    expect(grantsOf(grafana)).toEqual(['GRANT tally_reader'])
    const reader = grantsOf(at(root, 'roles', 'tally_reader'))
    expect(reader[0]).toBe('GRANT SELECT ON tally.*')
    expect(reader.slice(1).every((g) => g.startsWith('REVOKE SELECT'))).toBe(true)
    expect(reader.join('\n')).not.toMatch(/tally_restricted|\*\.\*/)
    expect(at(root, 'profiles', at(grafana, 'profile').text, 'readonly').text).toBe('2')
    // Nothing else gives grafana_ro anything.
    expect(child(grafana, 'access_management')).toBeUndefined()
    expect(child(grafana, 'allow_databases')).toBeUndefined()
  })

  it('grafana_ro may read what the dashboards read, and the dashboards read no tier I', () => {
    const revoked = grantsOf(at(usersXml(), 'roles', 'tally_reader'))
      .map((g) => /^REVOKE SELECT ON (\S+)$/.exec(g)?.[1])
      .filter((t) => t !== undefined)
    const columns = grantsOf(at(usersXml(), 'roles', 'tally_reader')).flatMap((g) => {
      const m = /^REVOKE SELECT\(([^)]*)\) ON (\S+)$/.exec(g)
      return m === null ? [] : (m[1] as string).split(',').map((c) => [m[2], c.trim()])
    })
    const dashboards = readdirSync(path('dashboards')).filter((f) => f.endsWith('.json'))
    expect(dashboards.length).toBeGreaterThan(0)
    for (const file of dashboards) {
      const sql = [...read(`dashboards/${file}`).matchAll(/"rawSql":\s*"((?:[^"\\]|\\.)*)"/g)].map(
        (m) => JSON.parse(`"${m[1]}"`) as string,
      )
      for (const query of sql) {
        expect(query, file).not.toMatch(/tally_restricted/)
        for (const table of query.match(/\btally\.[a-z_0-9]+/g) ?? []) {
          expect(revoked, `${file} reads ${table}`).not.toContain(table)
          for (const [t, column] of columns) {
            if (t === table)
              expect(query, `${file} reads ${table}.${column}`).not.toMatch(
                new RegExp(`\\b${column}\\b`),
              )
          }
        }
      }
    }
  })

  it('the default user is local only', () => {
    const ips = at(usersXml(), 'users', 'default', 'networks').children.map((c) => c.text)
    expect(ips.sort()).toEqual(['127.0.0.1', '::1'])
  })
})

describe('the cluster layout', () => {
  const file = 'deploy/cluster/compose.cluster.yaml'
  const cluster = () => loadXml('deploy/cluster/clickhouse/config.d/cluster.xml')
  const shards = () =>
    at(cluster(), 'remote_servers', 'tally').children.filter((c) => c.name === 'shard')

  it('remote_servers: 2 shards x 2 replicas with internal replication and a secret', () => {
    expect(shards()).toHaveLength(2)
    for (const shard of shards()) {
      expect(at(shard, 'internal_replication').text).toBe('true')
      expect(shard.children.filter((c) => c.name === 'replica')).toHaveLength(2)
    }
    expect(at(cluster(), 'remote_servers', 'tally', 'secret').attributes.from_env).toBeTruthy()
  })

  it('every node has its macros: its shard, a replica name unique in the cluster', () => {
    const replicas = shards().flatMap((shard, i) =>
      shard.children
        .filter((c) => c.name === 'replica')
        .map((r) => ({ host: at(r, 'host').text, shard: i + 1 })),
    )
    const seen = new Set<string>()
    for (const { host, shard } of replicas) {
      const macros = at(loadXml(`deploy/cluster/clickhouse/macros/${host}.xml`), 'macros')
      expect(Number(at(macros, 'shard').text), host).toBe(shard)
      expect(at(macros, 'replica').text).toBe(host)
      expect(at(macros, 'cluster').text).toBe('tally')
      seen.add(at(macros, 'replica').text)
    }
    expect(seen.size).toBe(4)
    expect(readdirSync(path('deploy/cluster/clickhouse/macros')).sort()).toEqual(
      replicas.map((r) => `${r.host}.xml`).sort(),
    )
  })

  it('3 Keeper nodes agree on their raft configuration; the servers use all three', () => {
    const raft = (n: number) => {
      const server = at(loadXml(`deploy/cluster/keeper/keeper-${n}.xml`), 'keeper_server')
      return {
        id: at(server, 'server_id').text,
        port: at(server, 'tcp_port').text,
        peers: at(server, 'raft_configuration').children.map(
          (s) => `${at(s, 'id').text}=${at(s, 'hostname').text}:${at(s, 'port').text}`,
        ),
      }
    }
    const nodes = [1, 2, 3].map(raft)
    expect(nodes.map((n) => n.id)).toEqual(['1', '2', '3'])
    expect(nodes[0]?.peers).toEqual(['1=keeper-1:9234', '2=keeper-2:9234', '3=keeper-3:9234'])
    for (const n of nodes) expect(n.peers).toEqual(nodes[0]?.peers)
    const zookeeper = at(cluster(), 'zookeeper').children.filter((c) => c.name === 'node')
    expect(zookeeper.map((z) => `${at(z, 'host').text}:${at(z, 'port').text}`)).toEqual(
      nodes.map((n, i) => `keeper-${i + 1}:${n.port}`),
    )
  })

  it('compose.cluster.yaml runs those nodes with those files, then migrates ON CLUSTER', () => {
    const compose = checkCompose(file)
    const services = tree(compose.services, 's')
    for (const n of [1, 2, 3]) {
      const keeper = tree(services[`keeper-${n}`], 'keeper')
      expect(mounts(keeper).find((m) => m.source === `./keeper/keeper-${n}.xml`)?.target).toBe(
        '/etc/clickhouse-keeper/keeper_config.xml',
      )
      expect(keeper.hostname).toBe(`keeper-${n}`)
    }
    for (const shard of shards()) {
      for (const replica of shard.children.filter((c) => c.name === 'replica')) {
        const host = at(replica, 'host').text
        const node = tree(services[host], host)
        expect(node.hostname).toBe(host)
        const byTarget = new Map(mounts(node).map((m) => [m.target, m.source]))
        expect(byTarget.get('/etc/clickhouse-server/config.d/macros.xml')).toBe(
          `./clickhouse/macros/${host}.xml`,
        )
        for (const target of [
          '/etc/clickhouse-server/config.d/cluster.xml',
          '/etc/clickhouse-server/config.d/tally.xml',
          '/etc/clickhouse-server/users.d/tally.xml',
          '/etc/clickhouse-server/users.d/cluster.xml',
        ]) {
          expect(byTarget.has(target), `${host}: ${target}`).toBe(true)
        }
        const env = environment(node)
        for (const name of [...fromEnvNames(usersXml()), ...fromEnvNames(cluster())]) {
          expect(env[name], `${host}: ${name}`).toBeDefined()
        }
      }
    }
    const migrate = tree(services.migrate, 'migrate')
    expect(migrate.command).toEqual(['collector', 'migrate', '--cluster', 'tally'])
    expect(tree(tree(services.collector, 'c').depends_on, 'd').migrate).toEqual({
      condition: 'service_completed_successfully',
    })
    checkCollectorService(compose, 'collector')
    checkGrafanaService(compose, file)
  })

  it("the collector's cluster profile inserts synchronously and with a quorum", () => {
    const profile = at(
      loadXml('deploy/cluster/clickhouse/users.d/cluster.xml'),
      'profiles',
      'tally_collector',
    )
    expect(at(profile, 'distributed_foreground_insert').text).toBe('1')
    expect(at(profile, 'insert_quorum').text).toBe('auto')
    expect(child(at(usersXml(), 'profiles'), 'tally_collector')).toBeDefined()
  })
})

describe('documents', () => {
  /** Repository paths a document names (in backticks or links) that must exist. */
  function namedPaths(text: string): string[] {
    const found = new Set<string>()
    const top =
      '(?:deploy|dashboards|collector|agent|docs|bin|cli|common|protocol|scripts|test|dist)'
    for (const m of text.matchAll(new RegExp(`(?<![\\w/.-])(${top}/[\\w./-]*[\\w/])`, 'g'))) {
      found.add((m[1] as string).replace(/\/$/, ''))
    }
    return [...found]
  }

  it.each(['README.md', 'docs/operators.md', 'deploy/TLS.md', 'deploy/cluster/README.md'])(
    '%s names only files that exist',
    (doc) => {
      const text = read(doc)
      const paths = namedPaths(text)
      expect(paths.length).toBeGreaterThan(3)
      for (const p of paths) {
        if (p.startsWith('dist/')) {
          // A build output: the script that makes it must exist.
          expect(p).toBe('dist/tally-agent.mjs')
          expect(JSON.parse(read('package.json')).scripts['build:agent']).toBeTruthy()
          continue
        }
        // From the repository's root, or (a link) from the document's own folder; a file the
        // operator makes from an example (deploy/.env) exists as that example.
        const exists = [p, `${p}.example`].some(
          (f) => existsSync(path(f)) || existsSync(join(dirname(path(doc)), f)),
        )
        expect(exists, `${doc} names ${p}`).toBe(true)
      }
    },
  )

  it.each([
    // Pasted into the README: its links are relative to the repository's root.
    ['README.md', ''],
    ['docs/operators.md', 'docs'],
    ['deploy/TLS.md', 'deploy'],
    ['deploy/cluster/README.md', 'deploy/cluster'],
  ])('%s links to files that exist', (doc, base) => {
    const links = [...read(doc).matchAll(/\]\(([^)\s]+)\)/g)]
      .map((m) => (m[1] as string).split('#')[0] as string)
      .filter((l) => l !== '' && !/^[a-z]+:/.test(l))
    expect(links.length).toBeGreaterThan(3)
    for (const link of links)
      expect(existsSync(path(base, link)), `${doc} links ${link}`).toBe(true)
  })

  it('the operators guide goes from ClickHouse to the first dashboard', () => {
    const text = read('docs/operators.md')
    const order = [
      'clickhouse/users.d/tally.xml',
      'tally-collector.service',
      'tally collector migrate',
      'deploy/agent/install.sh',
      'grafana-clickhouse-datasource',
      'Fleet',
    ].map((s) => text.indexOf(s))
    for (const [i, pos] of order.entries()) expect(pos, `step ${i}`).toBeGreaterThanOrEqual(0)
    expect(statSync(path('docs/operators.md')).size).toBeGreaterThan(4000)
  })
})
