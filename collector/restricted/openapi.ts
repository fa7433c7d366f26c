/**
 * The tier I routes' part of the API: their contract and schemas are in
 * protocol/api/restricted.ts; this module names them for the collector's code and tests that
 * import them from here.
 */
import { RESTRICTED_ROUTES } from '../../protocol/api/restricted.ts'
import { pathItems } from '../openapi.ts'

export {
  RESTRICTED_REQUESTS,
  RESTRICTED_RESPONSES,
  type ReceiptSigned,
  type RestrictedIngestAck,
} from '../../protocol/api/restricted.ts'

/** The path items of the tier I routes, as the document states them. */
export const restrictedPaths = (): Record<string, unknown> => pathItems(RESTRICTED_ROUTES)
