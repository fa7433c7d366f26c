/**
 * The store against the registers, at every start: every role the store holds without a
 * register entry granting it is taken away, so roles written straight into the store (by
 * whoever holds it) do not survive the collector's start.
 */

import type { Role } from '../../protocol/api/names.ts'
import type { JsonValue, RegisterEntry } from '../register/register.ts'
import {
  type AdministrationContext,
  administrationEntries,
  KINDS,
  recordStep,
  recordsAdministration,
} from './administration-register.ts'
import { SIDE_OF } from './roles.ts'
import { listUsers, type UserRecord } from './users.ts'

/** What each user was granted, by the trusted entries of both registers, in order. */
function applyGrant(granted: Map<string, Set<Role>>, entry: RegisterEntry): void {
  const d = entry.details as Record<string, JsonValue>
  const userId = String(d.user_id ?? '')
  const held = granted.get(userId) ?? new Set<Role>()
  granted.set(userId, held)
  if (entry.kind === KINDS.userCreated || entry.kind === KINDS.rolesConfirmed) {
    for (const r of (d.roles as Role[] | undefined) ?? []) held.add(r)
  } else if (entry.kind === KINDS.roleRevoked) {
    held.delete(d.role as Role)
  } else if (entry.kind === KINDS.rolesRemoved) {
    for (const r of (d.roles as Role[] | undefined) ?? []) held.delete(r)
  }
}

/**
 * Only entries the collector wrote count (their signature verifies, or a signed checkpoint
 * covers them from before entries were signed): a "roles confirmed" appended to the register's
 * tail by whoever holds the store grants nothing. Each removal is itself a register entry. A
 * register that never recorded any administration (a store from before it was recorded, with
 * no signed entry at all) gets its users recorded as they are, once, instead.
 */
export async function reconcileRoles(
  ctx: AdministrationContext,
): Promise<{ user_id: string; removed: Role[] }[]> {
  const granted = new Map<string, Set<Role>>()
  let recorded = false
  for (const side of ['itsd', 'oios'] as const) {
    // Any administration entry, trusted or not, or any signed entry at all, means the
    // register has recorded administration: forged or broken entries never make the store's
    // users count as recorded.
    if (await recordsAdministration(ctx.store, side)) recorded = true
    for (const entry of await administrationEntries(ctx.register, side, 'trusted')) {
      applyGrant(granted, entry)
    }
  }
  const users = (await listUsers(ctx.store)).filter((u) => !u.revoked && u.roles.length > 0)
  if (!recorded) {
    await recordAsTheyAre(ctx, users)
    return []
  }
  const removed: { user_id: string; removed: Role[] }[] = []
  for (const u of users) {
    const held = granted.get(u.user_id) ?? new Set<Role>()
    const extra = u.roles.filter((r) => !held.has(r))
    if (extra.length === 0) continue
    await recordStep(ctx, SIDE_OF[extra[0] as Role], KINDS.rolesRemoved, 'collector', {
      user_id: u.user_id,
      roles: extra,
    })
    const row = await ctx.users.find(u.user_id)
    if (row !== undefined) {
      await ctx.users.update(row, { roles: u.roles.filter((r) => held.has(r)) }, ctx.now())
    }
    removed.push({ user_id: u.user_id, removed: extra })
  }
  return removed
}

/** The upgrade from a store whose administration was never recorded: its users, as they are. */
async function recordAsTheyAre(ctx: AdministrationContext, users: UserRecord[]): Promise<void> {
  for (const u of users) {
    await recordStep(ctx, u.side, KINDS.userCreated, 'collector', {
      user_id: u.user_id,
      name: u.name,
      roles: u.roles,
      recorded_at_upgrade: true,
    })
  }
}
