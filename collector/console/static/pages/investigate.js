// The investigator's page of a case: the window and scope of the access grant, the drill-down
// (flows, DNS, web) with the API's own filters and paging, and the export bundle.
//
// Tier I values exist only here, in this page's memory and DOM, for the case's signed-in
// investigator: filters and results are never put in the page's address (hash or query) nor in
// any storage, the form does not autocomplete, the answers are fetched with `no-store`, and the
// access grant itself is held in this module's closure only. Every drill-down and export is
// registered by the collector before it answers, as with `tally case flows|dns|web|export`.
import { alertText, announce, field, h, when } from '../ui.js'

/** The API's cap on `limit` (MAX_DRILL_LIMIT): paging reaches this many rows, then narrow. */
const MAX_ROWS = 10_000
const PAGE_SIZES = [25, 50, 100, 500]

const COLUMNS = {
  flows: [
    ['start', 'Start', 'time'],
    ['end', 'End', 'time'],
    ['agent_id', 'Agent'],
    ['protocol', 'Protocol', 'protocol'],
    ['src', 'Source'],
    ['src_port', 'Source port'],
    ['dst', 'Destination'],
    ['dst_port', 'Destination port'],
    ['bytes', 'Bytes'],
    ['packets', 'Packets'],
  ],
  dns: [
    ['ts', 'Time', 'time'],
    ['agent_id', 'Agent'],
    ['client', 'Client'],
    ['server', 'Server'],
    ['query', 'Query'],
    ['qtype', 'Type'],
    ['rcode', 'Answer'],
  ],
  web: [
    ['ts', 'Time', 'time'],
    ['agent_id', 'Agent'],
    ['client', 'Client'],
    ['server', 'Server'],
    ['server_port', 'Port'],
    ['kind', 'Seen as'],
    ['name', 'Site'],
  ],
}
const PROTOCOLS = { 1: 'ICMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6' }
const CATEGORY_TEXT = {
  flows: 'flows (who talked to what, when, how much)',
  dns: 'DNS (names looked up)',
  web: 'web (sites visited)',
}

export async function render(view, ctx) {
  const [id] = ctx.params
  if (id === undefined) return listInvestigations(view, ctx)
  const caseAnswer = await ctx.api(`/v1/cases/${encodeURIComponent(id)}`)
  if (!caseAnswer.ok) {
    view.append(
      h('h1', {}, `Investigation ${id}`),
      h('p', { class: 'warning', role: 'alert' }, ctx.problemText(caseAnswer)),
    )
    return
  }
  const doc = caseAnswer.body
  view.append(
    h('h1', {}, `Investigation ${doc.case_id}`),
    h('p', {}, h('a', { href: `#/case/${encodeURIComponent(doc.case_id)}` }, 'The case’s page')),
  )
  const grantAnswer = await ctx.api(`/v1/cases/${encodeURIComponent(doc.case_id)}/access-grant`)
  if (!grantAnswer.ok) {
    view.append(
      h(
        'p',
        { class: 'warning', role: 'alert' },
        `No access to this case’s records: ${ctx.problemText(grantAnswer)}`,
      ),
    )
    return
  }
  // The grant is the investigator's credential for the records: memory only, sent as a header.
  const grant = grantAnswer.body
  const withGrant = (path, options = {}) =>
    ctx.api(path, { ...options, headers: { 'X-Tally-Grant': grant.token } })
  view.append(
    scope(doc, grant),
    drillSection(doc, grant, withGrant, ctx),
    exportSection(doc, withGrant, ctx),
  )
}

/** Without a case: the active cases this person investigates. */
async function listInvestigations(view, { api, user, problemText }) {
  view.append(h('h1', {}, 'Investigations'))
  const answer = await api('/v1/cases')
  if (!answer.ok) {
    view.append(h('p', { class: 'warning', role: 'alert' }, problemText(answer)))
    return
  }
  const mine = answer.body.cases.filter((c) => c.investigator === user.user_id)
  if (mine.length === 0) {
    view.append(h('p', {}, 'No case names you as its investigator.'))
    return
  }
  view.append(
    h(
      'ul',
      {},
      mine.map((c) =>
        h(
          'li',
          {},
          c.state === 'active'
            ? h('a', { href: `#/investigate/${encodeURIComponent(c.case_id)}` }, c.case_id)
            : c.case_id,
          ` (${c.state}) ${c.requesting_office ?? c.description ?? ''}`,
        ),
      ),
    ),
  )
}

function scope(doc, grant) {
  const row = (term, value) => [h('dt', {}, term), h('dd', {}, value)]
  return h(
    'section',
    { 'aria-labelledby': 'scope-title' },
    h('h2', { id: 'scope-title' }, 'Window and scope'),
    h(
      'p',
      { class: 'help' },
      'What the access grant lets you read; the filters below may only narrow it, and the collector refuses (and registers) a request that would widen it.',
    ),
    h(
      'dl',
      { class: 'case' },
      row('State', doc.state),
      row('Case window', `${when(doc.window.start)} – ${when(doc.window.end)}`),
      row('Grant window', `${when(grant.window.start)} – ${when(grant.window.end)}`),
      row('Categories granted', grant.categories.join(', ')),
      row(
        'Subjects',
        doc.subjects
          .map(
            (s) =>
              `${s.agent_id}${s.addresses.length ? ` (${s.addresses.join(', ')})` : ' (host mode)'}`,
          )
          .join('; '),
      ),
    ),
  )
}

/** One labelled input of the filter form, never autocompleted (its values may be tier I). */
function filterInput(id, label, help, attributes = {}) {
  const input = h('input', { type: 'text', name: id, autocomplete: 'off', ...attributes })
  return { input, el: field({ id, label, help, input }) }
}

function drillSection(doc, grant, withGrant, ctx) {
  const categories = ['flows', 'dns', 'web'].filter((c) => grant.categories.includes(c))
  const section = h(
    'section',
    { 'aria-labelledby': 'drill-title' },
    h('h2', { id: 'drill-title' }, 'Drill-down'),
  )
  if (categories.length === 0) {
    section.append(
      h('p', {}, 'The grant allows no flows, DNS or web records (packets only): export them.'),
    )
    return section
  }
  const category = h(
    'select',
    { name: 'category' },
    categories.map((c) => h('option', { value: c }, CATEGORY_TEXT[c])),
  )
  const agents = h(
    'datalist',
    { id: 'drill-agents' },
    doc.subjects.map((s) => h('option', { value: s.agent_id })),
  )
  const addresses = h(
    'datalist',
    { id: 'drill-addresses' },
    doc.subjects.flatMap((s) => s.addresses.map((a) => h('option', { value: a }))),
  )
  const from = filterInput('drill-from', 'From', 'Empty: the start of the grant’s window.', {
    type: 'datetime-local',
    step: '1',
  })
  const to = filterInput('drill-to', 'To', 'Empty: the end of the grant’s window.', {
    type: 'datetime-local',
    step: '1',
  })
  const agent = filterInput(
    'drill-agent',
    'Agent',
    'One of the subjects’ agents, or empty for all.',
    {
      list: 'drill-agents',
    },
  )
  const address = filterInput(
    'drill-address',
    'Subject address',
    'Gateway mode: one of the subject’s addresses in the grant, or empty.',
    { list: 'drill-addresses' },
  )
  const port = filterInput(
    'drill-port',
    'Port',
    'Flows: either end’s port; web: the server’s port.',
    {
      inputmode: 'numeric',
    },
  )
  const protocol = filterInput(
    'drill-protocol',
    'Protocol',
    'Flows: tcp, udp, icmp, icmpv6 or a number.',
  )
  const size = h(
    'select',
    { name: 'page-size' },
    PAGE_SIZES.map((n) => h('option', { value: n, selected: n === 50 }, String(n))),
  )
  const showFor = () => {
    port.el.hidden = category.value === 'dns'
    protocol.el.hidden = category.value !== 'flows'
  }
  category.addEventListener('change', showFor)
  showFor()
  const results = h('div', { id: 'drill-results' })
  const previous = h('button', { type: 'button', disabled: true }, 'Previous page')
  const next = h('button', { type: 'button', disabled: true }, 'Next page')
  const form = h(
    'form',
    { method: 'post', autocomplete: 'off', novalidate: true, 'aria-labelledby': 'drill-title' },
    field({ id: 'drill-category', label: 'Records', input: category }),
    from.el,
    to.el,
    agent.el,
    agents,
    address.el,
    addresses,
    port.el,
    protocol.el,
    field({ id: 'drill-size', label: 'Rows per page', input: size }),
    h('button', { type: 'submit' }, 'Show records'),
  )
  // The query of the page shown: in this closure only, never in the address bar.
  let query
  const show = async (page) => {
    alertText('')
    results.setAttribute('aria-busy', 'true')
    const answer = await drillPage(withGrant, doc.case_id, query, page)
    const more = answer.ok && answer.body.truncated
    previous.disabled = !answer.ok || page === 0
    next.disabled = !answer.ok || !more || (page + 1) * query.size >= MAX_ROWS
    results.replaceChildren(...resultView(answer, query, page, ctx))
    results.setAttribute('aria-busy', 'false')
    if (!answer.ok) alertText(`Refused: ${ctx.problemText(answer)}`)
    else announce(results.querySelector('caption')?.textContent ?? 'No records')
    query.page = page
  }
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    query = {
      category: category.value,
      params: narrowing(category.value, { from, to, agent, address, port, protocol }),
      size: Number(size.value),
      page: 0,
    }
    show(0)
  })
  previous.addEventListener('click', () => show(query.page - 1))
  next.addEventListener('click', () => show(query.page + 1))
  section.append(form, h('div', { class: 'pager' }, previous, next), results)
  return section
}

/** The query parameters the API takes, from the filled fields only (empty: the grant's). */
function narrowing(category, inputs) {
  const params = new URLSearchParams()
  const value = (name) => inputs[name].input.value.trim()
  for (const name of ['from', 'to']) {
    if (value(name) !== '') params.set(name, localToIso(value(name)))
  }
  if (value('agent') !== '') params.set('agent_id', value('agent'))
  if (value('address') !== '') params.set('address', value('address'))
  if (category !== 'dns' && value('port') !== '') params.set('port', value('port'))
  if (category === 'flows' && value('protocol') !== '') params.set('protocol', value('protocol'))
  return params
}

/** A datetime-local value (this browser's zone) as an ISO instant; as typed if it is not one. */
function localToIso(text) {
  const ms = Date.parse(text)
  return Number.isNaN(ms) ? text : new Date(ms).toISOString()
}

/**
 * Page `page` of the query: the API pages by `limit` alone (no offset), so the page asks for
 * every row up to the page's end and shows the last ones; it reaches MAX_ROWS rows at most.
 */
function drillPage(withGrant, caseId, query, page) {
  const params = new URLSearchParams(query.params)
  params.set('limit', String(Math.min(MAX_ROWS, (page + 1) * query.size)))
  return withGrant(`/v1/cases/${encodeURIComponent(caseId)}/${query.category}?${params}`)
}

function resultView(answer, query, page, ctx) {
  if (!answer.ok) {
    return [
      h(
        'p',
        { class: 'warning' },
        `The collector refused this request: ${ctx.problemText(answer)}`,
      ),
    ]
  }
  const first = page * query.size
  const rows = answer.body.rows.slice(first, first + query.size)
  const out = [table(query.category, rows, first, page)]
  if (answer.body.truncated && (page + 1) * query.size >= MAX_ROWS)
    out.push(
      h(
        'p',
        { class: 'help' },
        `More records are in scope than ${MAX_ROWS} rows: narrow the time range (From, To) to read on.`,
      ),
    )
  else if (answer.body.truncated && rows.length < query.size)
    out.push(
      h(
        'p',
        { class: 'help' },
        'More records are stored in this range than one call reads: narrow the time range to read on.',
      ),
    )
  return out
}

function table(category, rows, first, page) {
  const columns = COLUMNS[category]
  const caption =
    rows.length === 0
      ? `No ${category} records on page ${page + 1}`
      : `${category} records ${first + 1}–${first + rows.length} (page ${page + 1})`
  return h(
    'table',
    {},
    h('caption', {}, caption),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        columns.map(([, title]) => h('th', { scope: 'col' }, title)),
      ),
    ),
    h(
      'tbody',
      {},
      rows.map((row) =>
        h(
          'tr',
          {},
          columns.map(([key, , kind]) => h('td', {}, cell(row[key], kind))),
        ),
      ),
    ),
  )
}

function cell(value, kind) {
  if (kind === 'time') return new Date(Number(value)).toISOString()
  if (kind === 'protocol') return PROTOCOLS[value] ?? String(value)
  return String(value ?? '')
}

function exportSection(doc, withGrant, ctx) {
  const result = h('div', { id: 'export-result' })
  const button = h('button', { type: 'button' }, 'Make an export bundle')
  button.addEventListener('click', async () => {
    alertText('')
    button.disabled = true
    const answer = await withGrant(`/v1/cases/${encodeURIComponent(doc.case_id)}/exports`, {
      method: 'POST',
      body: {},
    })
    button.disabled = false
    if (!answer.ok) {
      alertText(`Export refused: ${ctx.problemText(answer)}`)
      return
    }
    result.replaceChildren(...made(doc, answer.body))
    announce(`Export ${answer.body.export_id} is ready: give its id to the receiving official.`)
  })
  return h(
    'section',
    { 'aria-labelledby': 'export-title' },
    h('h2', { id: 'export-title' }, 'Export for the receiving official (8.5c)'),
    h(
      'p',
      { class: 'help' },
      'A bundle of every record the grant covers (JSON and CSV per category, packets as pcap), with a manifest of SHA-256 digests. The receiving official downloads it, checks the digests and signs the receipt, after which the case’s tier I data is purged (8.5e).',
    ),
    button,
    result,
  )
}

function made(doc, created) {
  const receive = `#/receive/${encodeURIComponent(doc.case_id)}/${encodeURIComponent(created.export_id)}`
  return [
    h(
      'p',
      { class: 'ok' },
      'Export ',
      h('strong', { id: 'export-id' }, created.export_id),
      ' is on record. Give its id and the manifest digest to the receiving official; their page for it: ',
      h('a', { href: receive }, receive),
    ),
    h(
      'p',
      {},
      'Manifest digest (SHA-256): ',
      h('code', { id: 'export-manifest-sha256' }, created.manifest_sha256),
    ),
    h(
      'table',
      {},
      h('caption', {}, `Files of export ${created.export_id}`),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['File', 'Bytes', 'SHA-256'].map((t) => h('th', { scope: 'col' }, t)),
        ),
      ),
      h(
        'tbody',
        {},
        created.manifest.files.map((f) =>
          h(
            'tr',
            {},
            h('td', {}, f.name),
            h('td', {}, String(f.bytes)),
            h('td', {}, h('code', {}, f.sha256)),
          ),
        ),
      ),
    ),
  ]
}
