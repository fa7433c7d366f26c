/**
 * Proposals and their confirmation: a user, or a role for a user, is proposed by one
 * administrator of a side and takes effect only when a different administrator of the same
 * side confirms it. A new user's token comes in two parts, one to the proposer and one to the
 * confirmer, so no administrator ever holds a working token of someone they made. The founder's
 * one extra administrator (founders.ts) is the only user made by one person: it exists at once,
 * with a provisional token.
 *
 * Each step is recorded on the side's register before it is written (administration-register.ts).
 */

import type { Role } from '../../protocol/api/names.ts'
import { type AdministrationContext, KINDS, recordStep } from './administration-register.ts'
import {
  checkGrantedBy,
  checkNoConflicts,
  refuse,
  sideOf,
  visibleUser,
} from './administration-rules.ts'
import { founderExceptionOpen } from './founders.ts'
import type { Proposal } from './proposals-repository.ts'
import { ADMINISTRATOR, type Side } from './roles.ts'
import { issueSecret, newId, tokenKeyOf } from './tokens.ts'
import { type AuthenticatedUser, newPart, partHashes, secondPartHash } from './users.ts'
import type { NewUserRow } from './users-repository.ts'

/** What a proposal answers: the first token part for a new user, or a whole provisional token. */
export interface ProposalAnswer {
  proposal_id: string | null
  user_id: string
  name: string
  roles: Role[]
  state: 'proposed' | 'active'
  /** The proposer's part of a new user's token (the confirmer gets the other). */
  token_part?: string | undefined
  /** A provisional token: the founder's one extra administrator, to be replaced by its holder. */
  token?: string | undefined
  provisional?: boolean | undefined
}

export interface ProposalInput {
  name?: string
  user_id?: string
  roles: Role[]
}

/** The checks that need no store: `actor`'s side, and roles it may grant. */
export function proposalSide(actor: AuthenticatedUser, roles: readonly Role[]): Side {
  const side = sideOf(actor)
  if (roles.length === 0) refuse('unprocessable', 'invalid_roles', 'at least one role is required')
  checkGrantedBy(side, roles)
  return side
}

/** A new user with roles, or more roles for an existing user, proposed by `actor`. */
export function propose(
  ctx: AdministrationContext,
  actor: AuthenticatedUser,
  side: Side,
  input: ProposalInput,
): Promise<ProposalAnswer> {
  const roles = [...new Set(input.roles)]
  if (input.user_id !== undefined) return proposeRoles(ctx, actor, side, input.user_id, roles)
  if (input.name === undefined) {
    return refuse('unprocessable', 'invalid_request', 'a new user needs a name')
  }
  return proposeUser(ctx, actor, side, input.name, roles)
}

/** A user row of `side` made now by `actor`. */
function newUser(
  ctx: AdministrationContext,
  actor: AuthenticatedUser,
  side: Side,
  user: Pick<NewUserRow, 'user_id' | 'name' | 'roles' | 'token_sha256' | 'provisional'>,
): NewUserRow {
  const now = ctx.now()
  return {
    ...user,
    side,
    created_by: actor.user_id,
    created_at: now,
    revoked_at: null,
    version: now,
  }
}

async function proposeUser(
  ctx: AdministrationContext,
  actor: AuthenticatedUser,
  side: Side,
  name: string,
  roles: Role[],
): Promise<ProposalAnswer> {
  checkNoConflicts(roles)
  const userId = newId('u')
  if (
    roles.length === 1 &&
    roles[0] === ADMINISTRATOR[side] &&
    (await founderExceptionOpen(ctx, side))
  ) {
    // The founder's one extra administrator: it exists at once, with a provisional token.
    const issued = issueSecret(tokenKeyOf(ctx.store), 'u', userId)
    await recordStep(ctx, side, KINDS.userCreated, actor.user_id, {
      user_id: userId,
      name,
      roles,
      unconfirmed_administrator: true,
      provisional: true,
    })
    await ctx.users.write(
      newUser(ctx, actor, side, {
        user_id: userId,
        name,
        roles,
        token_sha256: issued.hash,
        provisional: 1,
      }),
    )
    const state = 'active'
    return { proposal_id: null, user_id: userId, name, roles, state, ...provisional(issued) }
  }
  const proposalId = newId('p')
  const first = `tly_u_${userId}.${newPart()}`
  await recordStep(ctx, side, KINDS.userProposed, actor.user_id, {
    proposal_id: proposalId,
    user_id: userId,
    name,
    roles,
  })
  const user = newUser(ctx, actor, side, {
    user_id: userId,
    name,
    roles: [],
    token_sha256: partHashes(ctx.store, userId, first),
    provisional: 0,
  })
  await ctx.users.write(user)
  await ctx.proposals.add(
    {
      proposal_id: proposalId,
      side,
      user_id: userId,
      roles,
      new_user: true,
      proposed_by: actor.user_id,
    },
    user.created_at,
  )
  return {
    proposal_id: proposalId,
    user_id: userId,
    name,
    roles,
    state: 'proposed',
    token_part: first,
  }
}

const provisional = (issued: { secret: string }) => ({ token: issued.secret, provisional: true })

async function proposeRoles(
  ctx: AdministrationContext,
  actor: AuthenticatedUser,
  side: Side,
  userId: string,
  roles: Role[],
): Promise<ProposalAnswer> {
  if (userId === actor.user_id) {
    refuse('forbidden', 'forbidden', 'nobody proposes roles for themselves')
  }
  const user = await visibleUser(ctx.users, side, userId, roles)
  if (user.revoked) refuse('conflict', 'conflict', `the user ${userId} is revoked`)
  const added = roles.filter((r) => !user.roles.includes(r))
  if (added.length === 0) {
    refuse('conflict', 'conflict', `the user ${userId} holds these roles already`)
  }
  checkNoConflicts([...user.roles, ...added])
  const now = ctx.now()
  const proposalId = newId('p')
  await recordStep(ctx, side, KINDS.rolesProposed, actor.user_id, {
    proposal_id: proposalId,
    user_id: userId,
    roles: added,
  })
  await ctx.proposals.add(
    {
      proposal_id: proposalId,
      side,
      user_id: userId,
      roles: added,
      new_user: false,
      proposed_by: actor.user_id,
    },
    now,
  )
  return {
    proposal_id: proposalId,
    user_id: userId,
    name: user.name,
    roles: added,
    state: 'proposed',
  }
}

/** The side's proposal that is still open, or the refusal that says why not. */
async function openProposal(
  ctx: AdministrationContext,
  side: Side,
  proposalId: string,
): Promise<Proposal> {
  const proposal = await ctx.proposals.find(side, proposalId)
  if (proposal === undefined) return refuse('not_found', 'not_found', `no proposal ${proposalId}`)
  if (proposal.state !== 'proposed') {
    refuse('conflict', 'conflict', `the proposal ${proposalId} was ${proposal.state} already`)
  }
  return proposal
}

/**
 * Confirms a proposal: `actor` must be another administrator of the proposal's side than the
 * proposer, and not the user it names. Answers the second token part of a new user.
 */
export async function confirm(
  ctx: AdministrationContext,
  actor: AuthenticatedUser,
  side: Side,
  proposalId: string,
): Promise<{ proposal: Proposal; token_part?: string }> {
  const proposal = await openProposal(ctx, side, proposalId)
  if (proposal.proposed_by === actor.user_id) {
    refuse(
      'forbidden',
      'second_person_required',
      'a proposal is confirmed by another administrator than the one who proposed it',
    )
  }
  if (proposal.user_id === actor.user_id) {
    refuse('forbidden', 'forbidden', 'nobody confirms their own roles')
  }
  const user = await ctx.users.find(proposal.user_id)
  if (user === undefined || user.revoked) {
    return refuse('conflict', 'conflict', `the user ${proposal.user_id} is revoked`)
  }
  const roles = [...new Set([...user.roles, ...proposal.roles])]
  checkNoConflicts(roles)
  const now = ctx.now()
  await recordStep(ctx, side, KINDS.rolesConfirmed, actor.user_id, {
    proposal_id: proposalId,
    user_id: proposal.user_id,
    roles: proposal.roles,
    proposed_by: proposal.proposed_by,
    new_user: proposal.new_user,
  })
  // A new user's second part: the confirmer's, joined by the person to the proposer's first.
  const second = proposal.new_user ? newPart() : undefined
  const tokenHash =
    second === undefined
      ? {}
      : {
          token_sha256: `${user.token_sha256.split(':')[0]}:${secondPartHash(ctx.store, user.user_id, second)}`,
        }
  await ctx.users.update(user, { roles, ...tokenHash }, now)
  await ctx.proposals.decide(proposal, 'confirmed', actor.user_id, now)
  return {
    proposal: { ...proposal, state: 'confirmed' as const, decided_by: actor.user_id },
    ...(second === undefined ? {} : { token_part: second }),
  }
}

/** Rejects a proposal (either administrator may); a proposed new user never comes to exist. */
export async function reject(
  ctx: AdministrationContext,
  actor: AuthenticatedUser,
  side: Side,
  proposalId: string,
): Promise<Proposal> {
  const proposal = await openProposal(ctx, side, proposalId)
  const now = ctx.now()
  await recordStep(ctx, side, KINDS.proposalRejected, actor.user_id, {
    proposal_id: proposalId,
    user_id: proposal.user_id,
  })
  if (proposal.new_user) {
    const user = await ctx.users.find(proposal.user_id)
    if (user !== undefined) await ctx.users.update(user, { revoked_at: now }, now)
  }
  await ctx.proposals.decide(proposal, 'rejected', actor.user_id, now)
  return { ...proposal, state: 'rejected' as const, decided_by: actor.user_id }
}
