/**
 * The separation-of-duties rules every administration step checks: which side an actor
 * administers, which roles that side grants, which users it sees, and the conflict matrix
 * (roles.ts CONFLICTS), refused on proposal and again on confirmation.
 */

import type { Role } from '../../protocol/api/names.ts'
import { DomainError, type Failure } from '../errors.ts'
import { administeredSide, conflictsIn, SIDE_OF, type Side } from './roles.ts'
import type { AuthenticatedUser } from './users.ts'
import type { UserRow, UsersRepository } from './users-repository.ts'

/** Refuses an administration step: nothing of it is recorded or written. */
export const refuse = (failure: Failure, code: string, message: string): never => {
  throw new DomainError(failure, code, message)
}

/** The side `actor` administers: ITSD's admins hold `admin`, OIOS's hold `oios_chief`. */
export function sideOf(actor: AuthenticatedUser): Side {
  const side = administeredSide(actor.roles)
  if (side === undefined) {
    return refuse(
      'forbidden',
      'forbidden',
      'role administration needs the admin or oios_chief role',
    )
  }
  return side
}

/** Each side's roles are granted by that side only. */
export function checkGrantedBy(side: Side, roles: readonly Role[]): void {
  for (const role of roles) {
    if (SIDE_OF[role] !== side) {
      refuse(
        'forbidden',
        'forbidden',
        `the role ${role} is granted by ${SIDE_OF[role] === 'oios' ? 'OIOS (an OIOS chief)' : 'ITSD (an admin)'} only`,
      )
    }
  }
}

/** Refuses a set of roles that one person may not hold together. */
export function checkNoConflicts(roles: readonly Role[]): void {
  const conflicts = conflictsIn(roles)
  if (conflicts.length === 0) return
  refuse(
    'unprocessable',
    'conflicting_roles',
    `one person may not hold both ${conflicts.map(([a, b]) => `${a} and ${b}`).join(', nor ')}`,
  )
}

/** A user `side` may administer for `roles`; the other side's users do not exist for it. */
export async function visibleUser(
  users: UsersRepository,
  side: Side,
  userId: string,
  roles: readonly Role[],
): Promise<UserRow> {
  const user = await users.find(userId)
  const crossing = side === 'oios' && roles.every((r) => r === 'oios_designee')
  if (user === undefined || (user.side !== side && !crossing)) {
    return refuse('not_found', 'not_found', `no user ${userId}`)
  }
  return user
}
