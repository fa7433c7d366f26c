/** Every dashboard, by the file it is written to (dashboards/<file>). */
import { collector } from './collector.ts'
import { fleet } from './fleet.ts'
import type { JsonObject } from './grafana.ts'
import { hostHealth } from './host-health.ts'
import { oversight } from './oversight.ts'
import { siteUsage } from './site-usage.ts'

export const DASHBOARDS: ReadonlyArray<{ file: string; build: () => JsonObject }> = [
  { file: 'fleet.json', build: fleet },
  { file: 'host-health.json', build: hostHealth },
  { file: 'site-usage.json', build: siteUsage },
  { file: 'collector.json', build: collector },
  { file: 'oversight.json', build: oversight },
]
