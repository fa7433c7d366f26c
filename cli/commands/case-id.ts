/** The argument every command on one case takes. */
import type { ArgumentSpec } from '../command-table.ts'

export const CASE_ID: ArgumentSpec = {
  name: '<case-id>',
  description: 'the case id (c-..., as `tally case list` shows it)',
}
