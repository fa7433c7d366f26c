/** `tally.oios_designations`: who ITSD designated for OIOS, per resource category (9.2e). */
import { z } from 'zod'
import type { Store } from '../store/client.ts'
import { insertRows, selectParsed } from '../store/rows.ts'

export type DesignationPosition = 'designee' | 'alternate'

export interface NewDesignation {
  category: string
  user_id: string
  position: DesignationPosition
  designated_by: string
  designated_at: number
}

const Designee = z.object({ user_id: z.string(), position: z.enum(['designee', 'alternate']) })
const Category = z.object({ category: z.string() })

export class DesignationsRepository {
  readonly #store: Store

  constructor(store: Store) {
    this.#store = store
  }

  /** The categories a user is designated for now. */
  async categoriesOf(userId: string): Promise<string[]> {
    const rows = await selectParsed(
      this.#store,
      Category,
      `SELECT category FROM tally.oios_designations FINAL
       WHERE user_id = {user:String} AND revoked_at IS NULL`,
      { user: userId },
    )
    return rows.map((r) => r.category)
  }

  /** Who is designated for a category now. */
  async designees(category: string): Promise<{ user_id: string; position: DesignationPosition }[]> {
    return selectParsed(
      this.#store,
      Designee,
      `SELECT user_id, position FROM tally.oios_designations FINAL
       WHERE category = {category:String} AND revoked_at IS NULL`,
      { category },
    )
  }

  async insert(designation: NewDesignation): Promise<void> {
    await insertRows(this.#store, 'tally.oios_designations', [
      { ...designation, revoked_at: null, version: designation.designated_at },
    ])
  }
}
