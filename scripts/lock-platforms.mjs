#!/usr/bin/env node
// Adds lockfile entries for platform packages the registry mirror here does not carry.
//
// `npm install` leaves an optional dependency out of package-lock.json when it cannot fetch its
// metadata (the mirror has no macOS or Windows builds of chdb and newer biome), and `npm ci`
// then refuses the lockfile as out of sync. These entries name the platform the package is for,
// so npm skips it on every other platform without fetching it. Run after changing dependencies:
//   npm install && node scripts/lock-platforms.mjs
import { readFileSync, writeFileSync } from 'node:fs'

const file = new URL('../package-lock.json', import.meta.url)
const lock = JSON.parse(readFileSync(file, 'utf8'))
const OS = ['darwin', 'linux', 'win32', 'android', 'freebsd', 'openbsd', 'sunos', 'aix']
const CPU = ['arm64', 'x64', 'ia32', 'arm', 'ppc64', 's390x', 'riscv64', 'loong64']

let added = 0
for (const [path, entry] of Object.entries(lock.packages)) {
  for (const [name, spec] of Object.entries(entry.optionalDependencies ?? {})) {
    const base = path === '' ? '' : `${path}/`
    if (lock.packages[`${base}node_modules/${name}`] || lock.packages[`node_modules/${name}`])
      continue
    const parts = name.split('/').pop().split('-')
    const os = parts.find((p) => OS.includes(p))
    const cpu = parts.find((p) => CPU.includes(p))
    if (!os || !cpu)
      throw new Error(`${name}: cannot tell its platform from its name; add it by hand`)
    lock.packages[`node_modules/${name}`] = {
      version: spec.replace(/^[\^~=]/, ''),
      cpu: [cpu],
      os: [os],
      ...(parts.includes('musl')
        ? { libc: ['musl'] }
        : parts.includes('gnu')
          ? { libc: ['glibc'] }
          : {}),
      optional: true,
    }
    added += 1
  }
}
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`)
console.log(`added ${added} platform entries`)
