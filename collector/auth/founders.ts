/**
 * Each side's founder, made by the collector at its first start: ITSD's admin
 * (data_dir/admin.token) and OIOS's chief (a token handed out once, for OIOS). A founder may
 * make exactly one more administrator of its side alone, once in the register's life (the
 * exception, read here; proposals.ts makes it); every later administrator is proposed and
 * confirmed like anyone.
 */
import { writeFileAtomic } from '../../common/atomic-file.ts'
import type { Role } from '../../protocol/api/names.ts'
import {
  type AdministrationContext,
  administrationEntries,
  KINDS,
  recordStep,
} from './administration-register.ts'
import { ADMINISTRATOR, type Side } from './roles.ts'
import { type IssuedSecret, issueSecret, newId, tokenKeyOf } from './tokens.ts'
import { authenticateUser, ITSD_FOUNDER, OIOS_FOUNDER, readAdminTokenFile } from './users.ts'
import type { UserRow } from './users-repository.ts'

const FOUNDER_MARK: Record<Side, string> = { itsd: ITSD_FOUNDER, oios: OIOS_FOUNDER }

/** Whether the admin token file holds the token of an admin. */
export async function adminTokenFileWorks(ctx: AdministrationContext, file: string) {
  const token = readAdminTokenFile(file)
  if (token === undefined) return false
  const user = await authenticateUser(ctx.store, token)
  return user?.roles.includes('admin') === true
}

/**
 * The ITSD founder gets a new token in `file` (the same person: never a second admin), or is
 * made on the very first start. 'none' when the founder was revoked: the other admins
 * administer, nobody is minted.
 */
export async function renewItsdFounder(
  ctx: AdministrationContext,
  file: string,
): Promise<'created' | 'reissued' | 'none'> {
  const founder = await founderOf(ctx, 'itsd')
  if (founder !== undefined) {
    if (founder.revoked) return 'none'
    const issued = issueSecret(tokenKeyOf(ctx.store), 'u', founder.user_id)
    await recordStep(ctx, 'itsd', KINDS.founderTokenReissued, 'collector', {
      user_id: founder.user_id,
    })
    await ctx.users.update(founder, { token_sha256: issued.hash }, ctx.now())
    writeFileAtomic(file, `${issued.secret}\n`, 0o600)
    return 'reissued'
  }
  const issued = issueSecret(tokenKeyOf(ctx.store), 'u', newId('u'))
  await createFounder(ctx, 'itsd', issued, 'admin', ['admin'], false)
  writeFileAtomic(file, `${issued.secret}\n`, 0o600)
  return 'created'
}

/** Makes OIOS's founder chief once; see RoleAdministration.ensureOiosFounder. */
export async function makeOiosFounder(
  ctx: AdministrationContext,
  file?: string,
): Promise<{ state: 'exists' } | { state: 'created'; token: string; file?: string }> {
  if ((await founderOf(ctx, 'oios')) !== undefined) return { state: 'exists' as const }
  const issued = issueSecret(tokenKeyOf(ctx.store), 'u', newId('u'))
  await createFounder(ctx, 'oios', issued, 'OIOS chief (bootstrap)', ['oios_chief'], true)
  if (file !== undefined) writeFileAtomic(file, `${issued.secret}\n`, 0o600)
  return { state: 'created' as const, token: issued.secret, ...(file ? { file } : {}) }
}

function founderOf(ctx: AdministrationContext, side: Side): Promise<UserRow | undefined> {
  return ctx.users.firstCreatedBy(FOUNDER_MARK[side])
}

async function createFounder(
  ctx: AdministrationContext,
  side: Side,
  issued: Pick<IssuedSecret, 'id' | 'hash'>,
  name: string,
  roles: Role[],
  provisional: boolean,
): Promise<void> {
  const now = ctx.now()
  await recordStep(ctx, side, KINDS.userCreated, 'collector', {
    user_id: issued.id,
    name,
    roles,
    founder: true,
    provisional,
  })
  await ctx.users.write({
    user_id: issued.id,
    name,
    roles,
    side,
    token_sha256: issued.hash,
    created_by: FOUNDER_MARK[side],
    created_at: now,
    revoked_at: null,
    provisional: provisional ? 1 : 0,
    version: now,
  })
}

/**
 * The founder's one unconfirmed administrator is still to be made: no administrator of the
 * side exists but the founder (in the store), and the register never recorded one made so.
 */
export async function founderExceptionOpen(
  ctx: AdministrationContext,
  side: Side,
): Promise<boolean> {
  const administrator = ADMINISTRATOR[side]
  if ((await ctx.users.countHolding(side, administrator)) > 1) return false
  if ((await ctx.proposals.countNaming(side, administrator)) > 0) return false
  // Every stored entry, trusted or not: one can only close the exception, never open it.
  const entries = await administrationEntries(ctx.register, side, 'all')
  return !entries.some(
    (e) =>
      (e.kind === KINDS.userCreated && e.details.unconfirmed_administrator === true) ||
      ((e.kind === KINDS.userProposed || e.kind === KINDS.rolesProposed) &&
        Array.isArray(e.details.roles) &&
        e.details.roles.includes(administrator)),
  )
}
