// A table of cases, each linking to its page.
import { h, when } from '../ui.js'

export function caseTable(cases, caption) {
  if (cases.length === 0) return h('p', {}, `${caption}: none.`)
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
        ['Case', 'Kind', 'State', 'Office or description', 'Filed', 'Window'].map((t) =>
          h('th', { scope: 'col' }, t),
        ),
      ),
    ),
    h(
      'tbody',
      {},
      cases.map((c) =>
        h(
          'tr',
          {},
          h('td', {}, h('a', { href: `#/case/${encodeURIComponent(c.case_id)}` }, c.case_id)),
          h('td', {}, c.emergency ? `${c.kind} (emergency)` : c.kind),
          h('td', {}, c.state),
          h('td', {}, c.requesting_office ?? c.description ?? ''),
          h('td', {}, when(c.created_at)),
          h('td', {}, `${when(c.window?.start)} – ${when(c.window?.end)}`),
        ),
      ),
    ),
  )
}
