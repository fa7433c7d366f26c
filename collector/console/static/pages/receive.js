// The receiving official's page (8.5c): download an export bundle, check every file's SHA-256
// in this browser (WebCrypto) against the manifest's digests, save the files, and sign the
// receipt over the digests computed here; the collector checks them again, and the receipt
// purges the case's tier I data (8.5e). Each download is registered by the collector.
import { alertText, announce, field, h, when } from '../ui.js'

const EXPORT_ID = /^x-[0-9a-f]{16}$/
const SHA256 = /^[0-9a-f]{64}$/

export async function render(view, ctx) {
  const [id, exportId] = ctx.params
  if (id === undefined) return listReceivable(view, ctx)
  const answer = await ctx.api(`/v1/cases/${encodeURIComponent(id)}`)
  if (!answer.ok) {
    view.append(
      h('h1', {}, `Receive: case ${id}`),
      h('p', { class: 'warning', role: 'alert' }, ctx.problemText(answer)),
    )
    return
  }
  const doc = answer.body
  view.append(
    h('h1', {}, `Receive: case ${doc.case_id}`),
    caseState(doc),
    receiveSection(doc, exportId, view, ctx),
  )
}

/** Without a case: the cases that name this person as their receiving official. */
async function listReceivable(view, { api, user, problemText }) {
  view.append(h('h1', {}, 'Receive export bundles'))
  const answer = await api('/v1/cases')
  if (!answer.ok) {
    view.append(h('p', { class: 'warning', role: 'alert' }, problemText(answer)))
    return
  }
  const mine = answer.body.cases.filter((c) => c.receiving_official === user.user_id)
  if (mine.length === 0) {
    view.append(h('p', {}, 'No case names you as its receiving official.'))
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
          h('a', { href: `#/receive/${encodeURIComponent(c.case_id)}` }, c.case_id),
          ` (${c.state}${c.purged_at ? ', tier I data purged' : ''}) ${c.requesting_office ?? c.description ?? ''}`,
        ),
      ),
    ),
  )
}

function caseState(doc) {
  return h(
    'dl',
    { class: 'case', id: 'receive-case' },
    h('dt', {}, 'State'),
    h('dd', {}, doc.state),
    h('dt', {}, 'Investigator'),
    h('dd', {}, doc.investigator ?? ''),
    h('dt', {}, 'Tier I data'),
    h('dd', { id: 'receive-purged' }, doc.purged_at ? `purged ${when(doc.purged_at)}` : 'held'),
  )
}

function receiveSection(doc, exportId, view, ctx) {
  const exportInput = h('input', {
    type: 'text',
    name: 'export_id',
    value: exportId,
    autocomplete: 'off',
    spellcheck: 'false',
  })
  const expectedInput = h('input', {
    type: 'text',
    name: 'manifest_sha256',
    autocomplete: 'off',
    spellcheck: 'false',
  })
  const results = h('div', { id: 'receive-results' })
  const bundles = h('div', { id: 'receive-bundles' })
  offerBundles(bundles, doc, exportInput, expectedInput, ctx)
  const form = h(
    'form',
    { method: 'post', novalidate: true, 'aria-labelledby': 'receive-title' },
    field({
      id: 'receive-export',
      path: 'export_id',
      label: 'Export id',
      help: 'Picked from the list above, or typed: x- and 16 characters, from the investigator who made the bundle.',
      input: exportInput,
    }),
    field({
      id: 'receive-expected',
      path: 'manifest_sha256',
      label: 'Manifest digest from the investigator (optional)',
      help: 'The SHA-256 of manifest.json the investigator gave you, over another channel: when given, the manifest downloaded here must have it.',
      input: expectedInput,
    }),
    h('button', { type: 'submit' }, 'Download and check'),
  )
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    alertText('')
    const exp = exportInput.value.trim()
    const expected = expectedInput.value.trim().toLowerCase()
    if (!EXPORT_ID.test(exp) || (expected !== '' && !SHA256.test(expected))) {
      alertText(
        !EXPORT_ID.test(exp)
          ? 'Export id: x- and 16 hexadecimal characters are expected.'
          : 'Manifest digest: 64 hexadecimal characters are expected.',
      )
      ;(EXPORT_ID.test(exp) ? expectedInput : exportInput).focus()
      return
    }
    results.replaceChildren(h('p', {}, 'Downloading and checking…'))
    const checked = await downloadAndCheck(doc.case_id, exp, expected)
    results.replaceChildren(...checkView(doc, exp, checked, view, ctx))
    if (checked.refused !== undefined) alertText(checked.refused)
    else if (checked.allMatch)
      announce('Every digest matches the manifest. You may sign the receipt.')
    else alertText('A digest does not match: do not sign the receipt; tell the investigator.')
  })
  return h(
    'section',
    { 'aria-labelledby': 'receive-title' },
    h('h2', { id: 'receive-title' }, 'Download and check the bundle'),
    h(
      'p',
      { class: 'help' },
      'Every file is downloaded into this page, its SHA-256 computed here (WebCrypto) and compared with the manifest. Save the files, then sign the receipt: it purges the case’s tier I data (8.5e).',
    ),
    bundles,
    form,
    results,
  )
}

/**
 * The case's bundles awaiting receipt (GET /v1/cases/{id}/exports), each with a button that puts
 * its id in the form; the typed id stays for when the list cannot be read. The listed digest is
 * the collector's: the one to compare with is the investigator's, given over another channel.
 */
async function offerBundles(container, doc, exportInput, expectedInput, ctx) {
  const answer = await ctx.api(`/v1/cases/${encodeURIComponent(doc.case_id)}/exports`)
  if (!answer.ok) {
    container.replaceChildren(
      h(
        'p',
        { class: 'help' },
        `The bundles could not be listed (${ctx.problemText(answer)}): type the export id.`,
      ),
    )
    return
  }
  const { exports } = answer.body
  if (exports.length === 0) {
    container.replaceChildren(h('p', {}, 'No bundle awaits your receipt in this case.'))
    return
  }
  const pick = (bundle) => {
    const button = h('button', { type: 'button' }, `Pick ${bundle.export_id}`)
    button.addEventListener('click', () => {
      exportInput.value = bundle.export_id
      announce(
        `Export ${bundle.export_id} picked. Give the investigator's manifest digest, then download and check.`,
      )
      expectedInput.focus()
    })
    return button
  }
  container.replaceChildren(
    h(
      'table',
      {},
      h('caption', {}, 'Bundles awaiting your receipt'),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Export', 'Made', 'By', 'Files', 'Bytes', 'Manifest digest (as listed)', ''].map((t) =>
            h('th', { scope: 'col' }, t),
          ),
        ),
      ),
      h(
        'tbody',
        {},
        exports.map((b) =>
          h(
            'tr',
            {},
            h('th', { scope: 'row' }, b.export_id),
            h('td', {}, when(b.created_at)),
            h('td', {}, b.created_by),
            h('td', {}, String(b.files)),
            h('td', {}, String(b.bytes)),
            h('td', {}, h('code', {}, b.manifest_sha256)),
            h('td', {}, pick(b)),
          ),
        ),
      ),
    ),
  )
}

/** A GET of raw bytes with the session; a refusal is worded as the API's. */
async function bytesOf(path) {
  let res
  try {
    res = await fetch(path, { credentials: 'same-origin', cache: 'no-store' })
  } catch (err) {
    return { ok: false, message: `the collector did not answer (${err.message})` }
  }
  if (!res.ok) {
    const body = await res.json().catch(() => ({}))
    if (res.status === 401)
      window.dispatchEvent(new CustomEvent('tally:signed-out', { detail: body }))
    return { ok: false, message: body.message ?? `the collector answered ${res.status}` }
  }
  return { ok: true, bytes: new Uint8Array(await res.arrayBuffer()) }
}

async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))
  return [...digest].map((b) => b.toString(16).padStart(2, '0')).join('')
}

/**
 * The manifest and every file it lists, each with its digest computed here. `expected`: the
 * manifest's digest as the investigator gave it, or ''.
 */
async function downloadAndCheck(caseId, exportId, expected) {
  if (globalThis.crypto?.subtle === undefined)
    return {
      refused:
        'This browser offers no WebCrypto here: open the console over HTTPS (or on this machine) to check digests.',
    }
  const base = `/v1/cases/${encodeURIComponent(caseId)}/exports/${encodeURIComponent(exportId)}`
  const manifestFile = await bytesOf(`${base}/manifest`)
  if (!manifestFile.ok) return { refused: `Download refused: ${manifestFile.message}` }
  let manifest
  try {
    manifest = JSON.parse(new TextDecoder().decode(manifestFile.bytes))
  } catch {
    return { refused: 'The manifest is not JSON: do not sign the receipt.' }
  }
  const manifestSha256 = await sha256Hex(manifestFile.bytes)
  const rows = [
    {
      name: 'manifest.json',
      bytes: manifestFile.bytes,
      expected: expected === '' ? undefined : expected,
      sha256: manifestSha256,
    },
  ]
  for (const f of manifest.files ?? []) {
    const file = await bytesOf(`${base}/files/${encodeURIComponent(f.name)}`)
    if (!file.ok) return { refused: `Download of ${f.name} refused: ${file.message}` }
    const sha256 = await sha256Hex(file.bytes)
    rows.push({
      name: f.name,
      bytes: file.bytes,
      expected: f.sha256,
      expectedBytes: f.bytes,
      sha256,
    })
  }
  const matches = (r) =>
    (r.expected === undefined || r.expected === r.sha256) &&
    (r.expectedBytes === undefined || r.expectedBytes === r.bytes.length)
  for (const r of rows) r.match = matches(r)
  return { rows, manifestSha256, allMatch: rows.every((r) => r.match) }
}

function checkView(doc, exportId, checked, view, ctx) {
  if (checked.refused !== undefined) return [h('p', { class: 'warning' }, checked.refused)]
  const { rows, allMatch } = checked
  const verdict = (r) => {
    if (r.expected === undefined) return 'computed (no digest given to compare)'
    return r.match ? 'matches' : 'DOES NOT MATCH'
  }
  const out = [
    h(
      'table',
      { id: 'receive-digests' },
      h('caption', {}, `Export ${exportId}: SHA-256 of each file, computed in this browser`),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['File', 'Bytes', 'Digest in the manifest', 'Digest computed here', 'Result', 'Save'].map(
            (t) => h('th', { scope: 'col' }, t),
          ),
        ),
      ),
      h(
        'tbody',
        {},
        rows.map((r) =>
          h(
            'tr',
            { class: r.match ? undefined : 'mismatch' },
            h('th', { scope: 'row' }, r.name),
            h('td', {}, String(r.bytes.length)),
            h('td', {}, h('code', {}, r.expected ?? '')),
            h('td', {}, h('code', {}, r.sha256)),
            h('td', {}, verdict(r)),
            h('td', {}, saveLink(r)),
          ),
        ),
      ),
    ),
    h(
      'p',
      { id: 'receive-verdict', class: allMatch ? 'ok' : 'warning' },
      allMatch
        ? 'Verified: every file matches the manifest’s digest.'
        : `Digest mismatch: ${rows
            .filter((r) => !r.match)
            .map((r) => r.name)
            .join(
              ', ',
            )} ${rows.filter((r) => !r.match).length === 1 ? 'does' : 'do'} not match. Do not sign the receipt.`,
    ),
  ]
  if (allMatch) out.push(receiptForm(doc, exportId, checked, view, ctx))
  return out
}

/** A link saving the bytes as downloaded (a blob: URL of this page; nothing goes back out). */
function saveLink(r) {
  const url = URL.createObjectURL(new Blob([r.bytes]))
  return h('a', { href: url, download: r.name }, `Save ${r.name}`)
}

function receiptForm(doc, exportId, checked, view, ctx) {
  const button = h('button', { type: 'button' }, 'Sign the receipt')
  const section = h(
    'section',
    { 'aria-labelledby': 'receipt-title' },
    h('h3', { id: 'receipt-title' }, 'Receipt (8.5c)'),
    h(
      'p',
      { class: 'help' },
      'You confirm that you received these files with these digests. The collector checks them against the bundle, records the receipt on the register and purges the case’s tier I data.',
    ),
    button,
  )
  button.addEventListener('click', async () => {
    alertText('')
    button.disabled = true
    const body = {
      manifest_sha256: checked.manifestSha256,
      files: checked.rows.slice(1).map((r) => ({ name: r.name, sha256: r.sha256 })),
    }
    const answer = await ctx.api(
      `/v1/cases/${encodeURIComponent(doc.case_id)}/exports/${encodeURIComponent(exportId)}/receipt`,
      { method: 'POST', body },
    )
    if (!answer.ok) {
      button.disabled = false
      alertText(`Receipt refused: ${ctx.problemText(answer)}`)
      return
    }
    const after = await ctx.api(`/v1/cases/${encodeURIComponent(doc.case_id)}`)
    if (after.ok) view.querySelector('#receive-case')?.replaceWith(caseState(after.body))
    section.replaceChildren(
      h(
        'p',
        { class: 'ok', id: 'receipt-result' },
        `Receipt signed for export ${exportId}; the case’s tier I data is purged.`,
      ),
    )
    announce(`Receipt signed for export ${exportId}; the case’s tier I data is purged.`)
  })
  return section
}
