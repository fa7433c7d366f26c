// The auditor's page: a register's entries (paged) and its signed checkpoints, verified in this
// browser by the code `tally register verify` runs (common/register-verify/, served with its
// types stripped: SHA-256 chain, RFC 6962 roots, Ed25519 signatures of entries and checkpoints,
// and a consistency proof from the head this browser verified last). Same code, same verdict,
// same problems; this page fetches, keeps the head and shows.

import { forgetKeptHead, KeptHeadError, readKeptHead, writeKeptHead } from '../kept-head.js'
import { AuditError, auditRegister, summaryLine } from '../register-verify/audit.ts'
import { ed25519Supported } from '../register-verify/keys.ts'
import { alertText, announce, h, when } from '../ui.js'

/** Who reads which register (the API's own rule: protocol/api/names.ts REGISTER_READERS). */
export const REGISTER_READERS = {
  itsd: ['auditor', 'admin', 'approver'],
  oios: ['oios_investigator', 'oios_chief'],
}
const TITLES = { itsd: 'ITSD special register', oios: 'OIOS register' }
const PAGE_SIZE = 50

export const readableRegisters = (roles) =>
  Object.keys(REGISTER_READERS).filter((r) => REGISTER_READERS[r].some((x) => roles.includes(x)))

export async function render(view, { user, params, api, problemText }) {
  const readable = readableRegisters(user.roles)
  const register = params[0] ?? readable[0]
  view.append(h('h1', {}, 'Register'))
  if (readable.length > 1) {
    view.append(
      h(
        'nav',
        { 'aria-label': 'Registers' },
        h(
          'ul',
          { class: 'inline' },
          readable.map((r) =>
            h(
              'li',
              {},
              h(
                'a',
                { href: `#/register/${r}`, 'aria-current': r === register ? 'page' : undefined },
                TITLES[r],
              ),
            ),
          ),
        ),
      ),
    )
  }
  if (!readable.includes(register)) {
    // Said before the API would answer: the same words for a register that does not exist and
    // for one the user may not read, so that the page discloses no more than the API's 404.
    view.append(h('p', { class: 'warning', role: 'alert' }, 'No such register for your roles.'))
    return
  }
  view.append(h('h2', { id: 'register-title' }, TITLES[register]))
  const get = async (path) => {
    const answer = await api(path)
    if (!answer.ok) throw new AuditError(problemText(answer))
    return answer.body
  }
  const verification = h('section', { 'aria-labelledby': 'verify-title' })
  const checkpoints = h('section', { 'aria-labelledby': 'checkpoints-title' })
  const entries = h('section', { 'aria-labelledby': 'entries-title' })
  view.append(verification, checkpoints, entries)
  const state = { problems: new Map(), from: 1 }
  const showEntries = () => renderEntries(entries, register, state, api, problemText)
  await renderVerification(verification, { user, register, get, state, checkpoints, showEntries })
  await showEntries()
}

// --- Verification ------------------------------------------------------------------------------

async function renderVerification(section, ctx) {
  const result = h('div', { id: 'verification', 'aria-live': 'polite' })
  const kept = h('div', { id: 'kept-head' })
  const run = h('button', { type: 'button', id: 'verify' }, 'Verify again')
  const forget = h('button', { type: 'button', id: 'forget-head' }, 'Forget the kept head')
  section.append(
    h('h3', { id: 'verify-title' }, 'Verification in this browser'),
    h(
      'p',
      { class: 'help' },
      'Every entry and checkpoint is fetched and checked here, with this browser’s own ' +
        'cryptography: each entry’s SHA-256 hash and its link to the one before, the RFC 6962 ' +
        'Merkle root of every signed checkpoint, the register key’s Ed25519 signatures on ' +
        'entries and checkpoints, and that the register still extends the head this browser ' +
        'verified last (a consistency proof). The collector is trusted for none of it. The same ' +
        'checks as `tally register verify`, with the same result.',
    ),
    result,
    kept,
    h('div', { class: 'actions' }, run, ' ', forget),
  )
  const verify = async () => {
    run.disabled = true
    try {
      await verifyOnce(result, kept, ctx)
    } finally {
      run.disabled = false
    }
  }
  run.addEventListener('click', verify)
  forget.addEventListener('click', () => {
    forgetKeptHead(ctx.user.user_id, ctx.register)
    showKept(kept, undefined)
    announce('The kept head is forgotten: the next verification starts over.')
  })
  await verify()
}

async function verifyOnce(result, keptView, ctx) {
  const { user, register, get, state } = ctx
  result.replaceChildren(h('p', {}, 'Verifying…'))
  if (!(await ed25519Supported())) {
    result.replaceChildren(
      verdict(
        false,
        'Not verified: this browser’s WebCrypto has no Ed25519, so the register’s signatures cannot be checked here. Use a current Chromium, Firefox or Safari, or `tally register verify`.',
      ),
    )
    return
  }
  let keptHead
  try {
    keptHead = readKeptHead(user.user_id, register)
  } catch (err) {
    if (!(err instanceof KeptHeadError)) throw err
    result.replaceChildren(verdict(false, `Not verified: ${err.message}`))
    alertText(err.message)
    return
  }
  let audit
  try {
    audit = await auditRegister(get, register, { keptHead })
  } catch (err) {
    if (!(err instanceof AuditError)) throw err
    result.replaceChildren(verdict(false, `Not verified: ${err.message}`))
    alertText(err.message)
    return
  }
  const { report } = audit
  state.problems = new Map()
  for (const p of report.problems) {
    const kinds = state.problems.get(p.seq) ?? []
    state.problems.set(p.seq, [...kinds, p.kind])
  }
  let stillKept = keptHead
  if (report.ok && audit.head !== undefined) {
    // As the CLI: only a register that verified moves the kept head.
    stillKept = writeKeptHead(user.user_id, register, audit.head, audit.key.key_id)
  }
  result.replaceChildren(...describe(audit, keptHead))
  showKept(keptView, stillKept)
  renderCheckpoints(ctx.checkpoints, audit)
  await ctx.showEntries()
  if (report.ok) announce(`Register ${register} verified: ${report.size} entries, no problem.`)
  else alertText(`Register ${register} does not verify: ${report.problems.length} problem(s).`)
}

const verdict = (ok, text) =>
  h('p', { id: 'verdict', class: ok ? 'ok' : 'warning', 'data-ok': String(ok) }, text)

function describe(audit, keptHead) {
  const { report } = audit
  const out = [
    verdict(
      report.ok,
      report.ok
        ? `Verified: ${report.size} entries, ${report.checked_checkpoints} signed checkpoints, no problem.`
        : `Does not verify: ${report.problems.length} problem${report.problems.length === 1 ? '' : 's'}.`,
    ),
    h('p', {}, h('code', { id: 'summary' }, summaryLine(audit))),
    h(
      'p',
      { class: 'help' },
      `Checked with the public key the collector serves (key id ${audit.key.key_id}); keep your own ` +
        'copy and compare it, or pass it to `tally register verify --public-key`.',
    ),
  ]
  if (keptHead !== undefined && report.ok) {
    out.push(
      h(
        'p',
        { class: 'help' },
        `The register extends the head this browser kept at size ${keptHead.head.size} (${keptHead.head.ts}).`,
      ),
    )
  }
  if (audit.unsigned > 0) {
    out.push(
      h(
        'p',
        { class: 'help' },
        `${audit.unsigned} entries after the latest signed head are not covered by a checkpoint yet.`,
      ),
    )
  }
  if (!report.ok) out.push(problemsTable(report.problems))
  return out
}

function problemsTable(problems) {
  return h(
    'table',
    { id: 'problems' },
    h('caption', {}, 'Problems found'),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['Seq', 'Kind', 'What'].map((t) => h('th', { scope: 'col' }, t)),
      ),
    ),
    h(
      'tbody',
      {},
      problems.map((p) =>
        h('tr', {}, h('td', {}, String(p.seq)), h('td', {}, p.kind), h('td', {}, p.message)),
      ),
    ),
  )
}

function showKept(view, kept) {
  if (kept === undefined) {
    view.replaceChildren(
      h('p', { class: 'help' }, 'This browser keeps no head of this register yet.'),
    )
    return
  }
  view.replaceChildren(
    h(
      'p',
      { class: 'help' },
      `This browser keeps the head at size ${kept.head.size} (${kept.head.ts}, root ` +
        `${kept.head.root.slice(0, 16)}…), verified ${when(kept.verified_at)}: the next ` +
        'verification demands a proof that the register extends it. Keep a copy elsewhere too.',
    ),
  )
}

// --- Checkpoints and entries -------------------------------------------------------------------

function renderCheckpoints(section, audit) {
  const list = [...audit.fetched.checkpoints].sort((a, b) => b.size - a.size)
  const problemAt = new Map()
  for (const p of audit.report.problems) {
    if (p.kind === 'checkpoint-mismatch' || p.message.startsWith('checkpoint at size'))
      problemAt.set(p.seq, p.kind)
  }
  section.replaceChildren(
    h('h3', { id: 'checkpoints-title' }, `Signed checkpoints (${list.length})`),
  )
  if (list.length === 0) {
    section.append(h('p', {}, 'No checkpoint is signed yet.'))
    return
  }
  section.append(
    h(
      'table',
      { id: 'checkpoints' },
      h('caption', {}, 'Signed tree heads, newest first'),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Size', 'Signed', 'Merkle root', 'Key id', 'Countersigned by', 'Check'].map((t) =>
            h('th', { scope: 'col' }, t),
          ),
        ),
      ),
      h(
        'tbody',
        {},
        list.map((cp) =>
          h(
            'tr',
            {},
            h('td', {}, String(cp.size)),
            h('td', {}, when(cp.ts)),
            h('td', {}, h('code', { title: cp.root }, `${cp.root.slice(0, 16)}…`)),
            h('td', {}, h('code', {}, cp.key_id.slice(0, 12))),
            h('td', {}, cp.countersignatures.map((c) => c.by).join(', ') || '—'),
            h('td', {}, problemAt.get(cp.size) ?? (audit.report.ok ? 'ok' : '')),
          ),
        ),
      ),
    ),
  )
}

async function renderEntries(section, register, state, api, problemText) {
  const answer = await api(
    `/v1/register/${encodeURIComponent(register)}/entries?from=${state.from}&limit=${PAGE_SIZE}`,
  )
  section.replaceChildren(h('h3', { id: 'entries-title' }, 'Entries'))
  if (!answer.ok) {
    section.append(h('p', { class: 'warning', role: 'alert' }, problemText(answer)))
    return
  }
  const { entries, next_from } = answer.body
  const redraw = (from) => async () => {
    state.from = from
    await renderEntries(section, register, state, api, problemText)
    section.querySelector('table, p')?.focus?.()
  }
  const first = entries[0]?.seq ?? state.from
  const last = entries.at(-1)?.seq ?? state.from
  section.append(
    h(
      'p',
      { id: 'entries-range' },
      entries.length === 0 ? 'No entries here.' : `Entries ${first} to ${last}.`,
    ),
    h(
      'div',
      { class: 'actions' },
      h(
        'button',
        {
          type: 'button',
          disabled: state.from <= 1,
          onclick: redraw(Math.max(1, state.from - PAGE_SIZE)),
        },
        'Earlier entries',
      ),
      ' ',
      h(
        'button',
        { type: 'button', disabled: next_from === null, onclick: redraw(next_from ?? state.from) },
        'Later entries',
      ),
    ),
  )
  if (entries.length > 0) section.append(entriesTable(entries, state.problems))
}

function entriesTable(entries, problems) {
  return h(
    'table',
    { id: 'entries', tabindex: '-1' },
    h('caption', {}, `Register entries ${entries[0].seq} to ${entries.at(-1).seq}`),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['Seq', 'Time', 'Kind', 'Actor', 'Case', 'Details', 'Hash', 'Problems'].map((t) =>
          h('th', { scope: 'col' }, t),
        ),
      ),
    ),
    h(
      'tbody',
      {},
      entries.map((e) => {
        const kinds = problems.get(e.seq)
        return h(
          'tr',
          { class: kinds ? 'problem' : undefined, 'data-seq': String(e.seq) },
          h('td', {}, String(e.seq)),
          h('td', {}, when(e.ts)),
          h('td', {}, e.kind),
          h('td', {}, e.actor),
          h(
            'td',
            {},
            e.case_id ? h('a', { href: `#/case/${encodeURIComponent(e.case_id)}` }, e.case_id) : '',
          ),
          h('td', {}, h('code', { class: 'details' }, JSON.stringify(e.details))),
          h('td', {}, h('code', { title: e.hash }, `${e.hash.slice(0, 12)}…`)),
          h('td', {}, kinds ? [...new Set(kinds)].join(', ') : ''),
        )
      }),
    ),
  )
}
