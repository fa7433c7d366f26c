/**
 * When each conversation was last seen, by its hash: an open-addressing table on typed arrays,
 * so a lookup allocates nothing. It holds hashes and times only, never endpoints.
 */
export const FLOW_NEW = -1
export const FLOW_NEW_TABLE_FULL = -2

export class FlowTable {
  readonly #maxFlows: number
  #mask: number
  #hi: Int32Array
  /** The key's low half plus one: 0 marks an empty slot. */
  #lo: Int32Array
  #seen: Float64Array
  #size = 0

  constructor(maxFlows: number, initialCapacity = 1 << 14) {
    this.#maxFlows = maxFlows
    const capacity = Math.min(initialCapacity, nextPowerOfTwo(maxFlows * 2))
    this.#mask = capacity - 1
    this.#hi = new Int32Array(capacity)
    this.#lo = new Int32Array(capacity)
    this.#seen = new Float64Array(capacity)
  }

  get size(): number {
    return this.#size
  }

  /**
   * Records that the flow `(hi, lo)` was seen at `timeMs`. Returns when it was seen before, or
   * FLOW_NEW, or FLOW_NEW_TABLE_FULL when it is new and there is no room to remember it.
   * `lo` must fit in 30 bits.
   */
  touch(hi: number, lo: number, timeMs: number): number {
    const stored = lo + 1
    const mask = this.#mask
    let slot = (hi ^ Math.imul(lo, 0x9e3779b1)) & mask
    for (;;) {
      const current = this.#lo[slot] ?? 0
      if (current === 0) break
      if (current === stored && this.#hi[slot] === hi) {
        const last = this.#seen[slot] ?? 0
        this.#seen[slot] = timeMs
        return last
      }
      slot = (slot + 1) & mask
    }
    if (this.#size >= this.#maxFlows) return FLOW_NEW_TABLE_FULL
    this.#hi[slot] = hi
    this.#lo[slot] = stored
    this.#seen[slot] = timeMs
    this.#size += 1
    if (this.#size * 2 > this.#mask + 1)
      this.#rebuild((this.#mask + 1) * 2, Number.NEGATIVE_INFINITY)
    return FLOW_NEW
  }

  /** Forgets flows last seen before `cutoffMs`. */
  sweep(cutoffMs: number): void {
    this.#rebuild(this.#mask + 1, cutoffMs)
  }

  #rebuild(capacity: number, cutoffMs: number): void {
    const hi = this.#hi
    const lo = this.#lo
    const seen = this.#seen
    this.#mask = capacity - 1
    this.#hi = new Int32Array(capacity)
    this.#lo = new Int32Array(capacity)
    this.#seen = new Float64Array(capacity)
    this.#size = 0
    for (let i = 0; i < lo.length; i++) {
      const stored = lo[i] ?? 0
      const time = seen[i] ?? 0
      if (stored === 0 || time < cutoffMs) continue
      const h = hi[i] ?? 0
      let slot = (h ^ Math.imul(stored - 1, 0x9e3779b1)) & this.#mask
      while ((this.#lo[slot] ?? 0) !== 0) slot = (slot + 1) & this.#mask
      this.#hi[slot] = h
      this.#lo[slot] = stored
      this.#seen[slot] = time
      this.#size += 1
    }
  }
}

function nextPowerOfTwo(n: number): number {
  let p = 1
  while (p < n) p *= 2
  return p
}
