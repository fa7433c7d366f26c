/**
 * Where the host stands: its own addresses, its site's prefixes, and the interface to capture
 * on, from configuration with defaults read off the host.
 */
import { readFileSync } from 'node:fs'
import { networkInterfaces } from 'node:os'
import type { AggregatorOptions } from './aggregator.ts'
import { parsePrefix } from './prefixes.ts'

export interface TrafficSettings {
  mode: 'host' | 'gateway'
  site_prefixes: string[]
  organisation_prefixes: string[]
  flow_idle_seconds: number
  max_flows: number
}

const hostAddresses = () =>
  Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined)

/**
 * Aggregator options for this host. In host mode the site is, unless configured, the subnets of
 * the host's own non-loopback interfaces.
 */
export function aggregatorOptions(settings: TrafficSettings): AggregatorOptions {
  const addresses = hostAddresses()
  const sitePrefixes =
    settings.site_prefixes.length > 0 || settings.mode === 'gateway'
      ? settings.site_prefixes
      : addresses.filter((a) => !a.internal && a.cidr !== null).map((a) => a.cidr as string)
  return {
    mode: settings.mode,
    // Loopback as its whole range (127.0.0.53 is this host too); others as single addresses.
    localAddresses: addresses.map((a) =>
      parsePrefix(a.internal && a.cidr !== null ? a.cidr : (a.address.split('%')[0] ?? a.address)),
    ),
    sitePrefixes: sitePrefixes.map(parsePrefix),
    organisationPrefixes: settings.organisation_prefixes.map(parsePrefix),
    flowIdleMs: settings.flow_idle_seconds * 1000,
    maxFlows: settings.max_flows,
  }
}

/** The interface of the default route (Linux), else the first interface that is up and not loopback. */
export function defaultInterface(procRoot = '/proc'): string | undefined {
  try {
    const lines = readFileSync(`${procRoot}/net/route`, 'utf8').trim().split('\n').slice(1)
    for (const line of lines) {
      const [name, destination] = line.trim().split(/\s+/)
      if (destination === '00000000' && name !== undefined) return name
    }
  } catch {
    // not Linux, or no procfs: fall back below
  }
  for (const [name, list] of Object.entries(networkInterfaces())) {
    if (list?.some((a) => !a.internal)) return name
  }
  return undefined
}
