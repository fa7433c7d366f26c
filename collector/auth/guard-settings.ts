/**
 * The settings that guard tier I and the workflow (k, the outbox, the grant limits) are on the
 * ITSD register: at every start, a setting whose value differs from the last one the register
 * holds gets an entry "guard setting changed" with the old and the new value. Lowering k or
 * lengthening grants quietly, by editing a file and restarting, is thus on the record.
 */
import type { CollectorConfig } from '../config.ts'
import type { JsonValue, Register, RegisterEntry } from '../register/register.ts'

export const GUARD_SETTING_CHANGED = 'guard setting changed'

/** The guarded settings, by their path in the configuration. */
export const GUARD_SETTINGS = [
  'usage.k',
  'usage.release_after_seconds',
  'cases.max_grant_days',
  'cases.technical_max_hours',
  'cases.emergency_written_hours',
  'cases.outbox.webhook_url',
  'cases.outbox.smtp',
] as const

function valueAt(config: CollectorConfig, path: string): JsonValue {
  let value: unknown = config
  for (const key of path.split('.')) {
    value =
      value !== null && typeof value === 'object'
        ? (value as Record<string, unknown>)[key]
        : undefined
  }
  if (path === 'cases.outbox.webhook_url' && typeof value === 'string') {
    // Credentials in the URL are not the register's business.
    const url = new URL(value)
    url.username = ''
    url.password = ''
    value = url.toString()
  }
  // The JSON form (an absent setting is null), as the register will hold it.
  return value === undefined ? null : (JSON.parse(JSON.stringify(value)) as JsonValue)
}

/** Appends one entry per guarded setting that changed since the register last recorded it. */
export async function recordGuardSettings(
  register: Register,
  config: CollectorConfig,
): Promise<{ setting: string; old: JsonValue; new: JsonValue }[]> {
  const last = new Map<string, JsonValue>()
  let from: number | null = 1
  while (from !== null) {
    // Only entries the collector wrote: a forged "changed" entry must not hide a real change.
    const page: { entries: RegisterEntry[]; next_from: number | null } =
      await register.trustedEntriesPage('itsd', { from, limit: 10_000 })
    for (const entry of page.entries) {
      if (entry.kind !== GUARD_SETTING_CHANGED) continue
      const setting = entry.details.setting
      if (typeof setting === 'string') last.set(setting, entry.details.new ?? null)
    }
    from = page.next_from
  }
  const changed: { setting: string; old: JsonValue; new: JsonValue }[] = []
  for (const setting of GUARD_SETTINGS) {
    const now = valueAt(config, setting)
    const before = last.has(setting) ? (last.get(setting) as JsonValue) : null
    const known = last.has(setting)
    if (known && JSON.stringify(before) === JSON.stringify(now)) continue
    await register.append({
      register: 'itsd',
      kind: GUARD_SETTING_CHANGED,
      actor: 'collector',
      details: { setting, old: before, new: now, first_recorded: !known },
    })
    changed.push({ setting, old: before, new: now })
  }
  return changed
}
