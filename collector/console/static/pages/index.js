// Every page of the console, in navigation order. A page is a module exporting
// `render(view, { user, params, api, problemText })`; `roles` says who sees it in the
// navigation and who may open it ('any': everyone signed in). `path` is the hash route
// (#/path/param...): the router picks the longest path that prefixes the location.
export const PAGES = [
  { path: 'home', title: 'Overview', roles: 'any', load: () => import('./home.js') },
  {
    path: 'request/written',
    title: 'Written request',
    roles: ['requester'],
    load: () => import('./request.js'),
  },
  {
    path: 'request/emergency',
    title: 'Emergency (verbal) request',
    roles: ['approver'],
    load: () => import('./request.js'),
  },
  {
    path: 'request/technical',
    title: 'Technical case',
    roles: ['itsd_lead'],
    load: () => import('./request.js'),
  },
  {
    path: 'request/oios',
    title: 'OIOS case',
    roles: ['oios_investigator'],
    load: () => import('./request.js'),
  },
  {
    path: 'approvals',
    title: 'Approvals queue',
    roles: ['approver', 'oios_chief'],
    load: () => import('./approvals.js'),
  },
  {
    path: 'investigate',
    title: 'Investigations',
    roles: ['itsd_investigator', 'oios_investigator'],
    load: () => import('./investigate.js'),
  },
  {
    path: 'receive',
    title: 'Receive bundles',
    roles: ['receiving_official'],
    load: () => import('./receive.js'),
  },
  { path: 'cases', title: 'My cases', roles: 'any', load: () => import('./cases.js') },
  {
    path: 'register',
    title: 'Register',
    roles: ['auditor', 'admin', 'approver', 'oios_investigator', 'oios_chief'],
    load: () => import('./register.js'),
  },
  { path: 'case', title: 'Case', roles: 'any', hidden: true, load: () => import('./case.js') },
]

export function pageFor(path) {
  let best
  for (const page of PAGES) {
    if (
      (path === page.path || path.startsWith(`${page.path}/`)) &&
      (best === undefined || page.path.length > best.path.length)
    )
      best = page
  }
  if (best === undefined) return { page: undefined, params: [] }
  const rest = path.slice(best.path.length).split('/').filter(Boolean).map(decodeURIComponent)
  return { page: best, params: rest }
}
