/**
 * The people of a case for `npm start`: one user per role a case needs, so that a newcomer can
 * open the console and take a case from request to purge by signing in as each. Made the way
 * the API requires of anyone (docs/cases.md, "A case from request to purge on npm start's
 * system"): the first admin proposes, the demo's second admin confirms, and the person's token
 * is the two parts joined; OIOS's chief is OIOS's bootstrap chief, whose provisional token is
 * replaced first. Each token is kept in <data_dir>/people/<role>.token, which a site never does.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomic } from '../common/atomic-file.ts'
import { admin } from '../protocol/api/index.ts'
import type { Role } from '../protocol/api/names.ts'
import { type ApiTarget, call, readTokenFile } from '../protocol/client.ts'

/** The ITSD people of a case, each a separate person so that separation of duties holds. */
export const DEMO_ITSD_PEOPLE: readonly { role: Role; name: string }[] = [
  { role: 'requester', name: 'Rita Requester' },
  { role: 'approver', name: 'Arthur Approver' },
  { role: 'itsd_investigator', name: 'Ines Investigator' },
  { role: 'receiving_official', name: 'Roger Receiving-Official' },
  { role: 'auditor', name: 'Audrey Auditor' },
]

/** Every role the demo makes a person for, in the order a case meets them. */
export const DEMO_ROLES: readonly Role[] = [
  'requester',
  'oios_chief',
  ...DEMO_ITSD_PEOPLE.map((p) => p.role).filter((r) => r !== 'requester'),
]

export interface DemoPeopleInputs {
  collectorUrl: string
  /** The first admin's token: proposes. */
  adminToken: string
  /** The second admin's token file: confirms; absent when the demo has none. */
  secondAdminFile: string | undefined
  /** OIOS's bootstrap chief's token file, when the demo wrote it itself. */
  oiosBootstrapFile: string | undefined
  dataDir: string
}

export const peopleDirOf = (dataDir: string): string => join(dataDir, 'people')
export const personFileOf = (dataDir: string, role: Role): string =>
  join(peopleDirOf(dataDir), `${role}.token`)
/**
 * Who is who (role, user id, name): the request form asks for the receiving official's user id
 * and the approval for the investigator's, which a person at the console would otherwise learn
 * only by signing in as them. Not secret, unlike the tokens beside it.
 */
export const whoFileOf = (dataDir: string): string => join(peopleDirOf(dataDir), 'people.txt')

interface Person {
  user_id: string
  name: string
}

function readWho(file: string): Map<Role, Person> {
  const who = new Map<Role, Person>()
  if (!existsSync(file)) return who
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [role, userId, name] = line.split('\t')
    if (role && userId && name && DEMO_ROLES.includes(role as Role))
      who.set(role as Role, { user_id: userId, name })
  }
  return who
}

function writeWho(file: string, who: Map<Role, Person>): void {
  const lines = DEMO_ROLES.flatMap((role) => {
    const person = who.get(role)
    return person === undefined ? [] : [`${role}\t${person.user_id}\t${person.name}\n`]
  })
  writeFileAtomic(file, lines.join(''), 0o600)
}

/**
 * Makes the people whose token file is missing and says in one line what became of them. Never
 * throws: a demo whose people could not be made still runs, and the line says why.
 */
export async function makeDemoPeople(inputs: DemoPeopleInputs): Promise<string> {
  const dir = peopleDirOf(inputs.dataDir)
  const made: Role[] = []
  const failed: string[] = []
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    // mkdir's mode is cut by the umask and leaves an existing directory as it was.
    chmodSync(dir, 0o700)
  } catch (err) {
    return `people not made: ${dir}: ${oneLine(err)}`
  }
  const missing = (role: Role) => !existsSync(personFileOf(inputs.dataDir, role))
  const who = readWho(whoFileOf(inputs.dataDir))
  for (const person of DEMO_ITSD_PEOPLE.filter((p) => missing(p.role))) {
    try {
      who.set(person.role, await makeItsdPerson(inputs, person))
      made.push(person.role)
    } catch (err) {
      failed.push(`${person.role} (${oneLine(err)})`)
    }
  }
  if (missing('oios_chief')) {
    try {
      who.set('oios_chief', await takeOverOiosChief(inputs))
      made.push('oios_chief')
    } catch (err) {
      failed.push(`oios_chief (${oneLine(err)})`)
    }
  }
  try {
    if (made.length > 0) writeWho(whoFileOf(inputs.dataDir), who)
  } catch (err) {
    failed.push(`${whoFileOf(inputs.dataDir)} (${oneLine(err)})`)
  }
  return peopleLine(dir, made, failed)
}

function peopleLine(dir: string, made: Role[], failed: string[]): string {
  if (failed.length > 0)
    return `people not all made in ${dir}/: ${failed.join('; ')}${made.length > 0 ? `; made ${made.join(', ')}` : ''}`
  const kept = made.length === 0 ? ' (kept from an earlier start)' : ''
  return `people ready in ${dir}/${kept}: ${DEMO_ROLES.join(', ')}; who is who in people.txt`
}

/** An error as part of the one line (an API refusal may list its issues on lines of their own). */
const oneLine = (err: unknown): string =>
  (err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, ' ')

/** First admin proposes, second admin confirms, the person's token is the two parts joined. */
async function makeItsdPerson(
  inputs: DemoPeopleInputs,
  person: { role: Role; name: string },
): Promise<Person> {
  if (inputs.secondAdminFile === undefined || !existsSync(inputs.secondAdminFile))
    throw new Error('the demo has no second admin to confirm')
  const first: ApiTarget = { collectorUrl: inputs.collectorUrl, token: inputs.adminToken }
  const second: ApiTarget = {
    collectorUrl: inputs.collectorUrl,
    token: readTokenFile(inputs.secondAdminFile),
  }
  const proposed = await call(first, admin.proposeUser, {
    body: { name: person.name, roles: [person.role] },
  })
  if (proposed.proposal_id === null || proposed.token_part === undefined)
    throw new Error('the proposal gave no token part')
  const proposalId = proposed.proposal_id
  const confirmed = await call(second, admin.confirmProposal, {
    params: { id: proposalId },
  }).catch(async (err: Error) => {
    // Leave no proposal pending that nobody will confirm: the next start proposes afresh.
    await call(first, admin.rejectProposal, { params: { id: proposalId } }).catch(() => undefined)
    throw err
  })
  if (confirmed.token_part === undefined) throw new Error('the confirmation gave no token part')
  writeFileAtomic(
    personFileOf(inputs.dataDir, person.role),
    `${proposed.token_part}${confirmed.token_part}\n`,
    0o600,
  )
  return { user_id: proposed.user_id, name: person.name }
}

/**
 * OIOS's chief is the bootstrap chief: its token is provisional (it passed through the demo's
 * hands), and the API's way out is the holder replacing it. The replaced one is dead, so its
 * file goes, leaving one token for the chief.
 */
async function takeOverOiosChief(inputs: DemoPeopleInputs): Promise<Person> {
  const file = inputs.oiosBootstrapFile
  if (file === undefined || !existsSync(file))
    throw new Error('no OIOS bootstrap token file of the demo')
  const replaced = await call(
    { collectorUrl: inputs.collectorUrl, token: readTokenFile(file) },
    admin.replaceOwnToken,
  )
  writeFileAtomic(personFileOf(inputs.dataDir, 'oios_chief'), `${replaced.token}\n`, 0o600)
  unlinkSync(file)
  const chief = { collectorUrl: inputs.collectorUrl, token: replaced.token }
  // The token is made and kept by now: a name not read is no reason to call the chief not made.
  const users = await call(chief, admin.listUsers).then(
    (list) => list.users,
    () => [],
  )
  const name = users.find((u) => u.user_id === replaced.user_id)?.name ?? 'OIOS chief'
  return { user_id: replaced.user_id, name }
}
