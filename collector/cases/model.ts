/**
 * An investigation case as the workflow stores it. The requests that move it are the API's
 * request bodies (protocol/api/cases.ts), its kinds and states the API's names
 * (protocol/api/names.ts); both are imported from there.
 *
 * The stored case document: the API's Case schema (protocol/api/cases.ts) is its one definition,
 * so the document the workflow writes is the one the repository reads back and the API answers.
 */
export type { Case } from '../../protocol/api/cases.ts'
