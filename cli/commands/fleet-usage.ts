/** `tally fleet` and `tally usage`: what operators read of a running collector (tier A). */
import type { z } from 'zod'
import { USAGE_DIMENSIONS } from '../../protocol/api/names.ts'
import type { FleetAgent, UsageResponse } from '../../protocol/api/usage.ts'
import { API_OPTIONS, type ApiOptions, api, contracts, print } from '../api-options.ts'
import type { CommandSpec } from '../command-table.ts'

export const fleetCommand: CommandSpec<ApiOptions & { site?: string }> = {
  name: 'fleet',
  description:
    'List enrolled agents with their site, version and when they last sent (operator or admin)',
  options: [{ flags: '--site <name>', description: 'only this site' }, ...API_OPTIONS],
  run: async (options) => {
    const { usage } = await contracts()
    const answer = await api(options, usage.fleet, { query: { site: options.site } })
    print(options, answer, () => formatFleet(answer.agents))
  },
}

export function formatFleet(agents: readonly z.output<typeof FleetAgent>[]): string {
  if (agents.length === 0) return 'no agents enrolled'
  return agents
    .map(
      (a) =>
        `${a.site}/${a.host}  ${a.agent_id}  v${a.version ?? '?'}  last seen ${a.last_seen ?? 'never'}` +
        `  last seq ${a.last_seq ?? '-'}${a.revoked ? '  (revoked)' : ''}`,
    )
    .join('\n')
}

interface UsageOptions extends ApiOptions {
  by: string
  site?: string
  from?: string
  to?: string
  step?: string
}

export const usageCommand: CommandSpec<UsageOptions> = {
  name: 'usage',
  description:
    'Site usage (tier A) as GET /v1/usage answers it: bytes, packets and new flows per site, ' +
    'time step and grouping, summed from released cells only. A cell is one site, minute and ' +
    'value of each grouping; it is released, usage.release_after_seconds after its minute, ' +
    'when at least k hosts (usage.k) contributed to it, and the smaller cells of a site and ' +
    'minute are summed into "other", itself released only from k hosts (operator or admin)',
  options: [
    {
      flags: '--by <grouping>',
      description: 'what to group by',
      choices: USAGE_DIMENSIONS,
      default: 'service',
    },
    { flags: '--site <name>', description: 'only this site (default: every site)' },
    {
      flags: '--from <time>',
      description:
        'start, ISO 8601 or seconds since 1970, widened to a whole minute (default: an hour before --to)',
    },
    {
      flags: '--to <time>',
      description: 'end, ISO 8601 or seconds since 1970, widened to a whole minute (default: now)',
    },
    {
      flags: '--step <seconds>',
      description:
        'seconds each row sums, a whole number of minutes (default: the whole range in one row)',
    },
    ...API_OPTIONS,
  ],
  run: async (options) => {
    const { by, site, from, to, step } = options
    const { usage } = await contracts()
    const answer = await api(options, usage.usage, { query: { by, site, from, to, step } })
    print(options, answer, () => formatUsage(answer))
  },
}

export function formatUsage(answer: z.output<typeof UsageResponse>): string {
  const head =
    `site usage by ${answer.by}${answer.site === null ? '' : ` for ${answer.site}`}, ` +
    `${answer.from} to ${answer.to}, step ${answer.step} s; ` +
    `a bucket is shown only when at least k=${answer.k} hosts contributed`
  if (answer.buckets.length === 0)
    return `${head}\nno bucket reaches k=${answer.k} hosts in this range`
  const rows = [
    ['time', 'site', answer.by, 'bytes', 'packets', 'flows', 'hosts'],
    ...answer.buckets.map((b) => [
      b.ts,
      b.site,
      String(b[answer.by]),
      String(b.bytes),
      String(b.packets),
      String(b.flows),
      String(b.hosts),
    ]),
  ]
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? []
  // Text columns left, numbers right, as a reader scans them.
  const line = (row: string[]) =>
    row
      .map((cell, i) => (i < 3 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd()
  return [head, ...rows.map(line)].join('\n')
}
