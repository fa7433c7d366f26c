/**
 * Serialisation of async sections that read then write (a token's remaining uses, a register's
 * next sequence number, a case's state). Node runs one callback at a time, so these are not
 * locks against threads: they stop two awaits of the same read-modify-write from interleaving.
 */

/** Runs sections one after the other, in the order they were given. */
export class Mutex {
  #tail: Promise<unknown> = Promise.resolve()

  /** Runs `section` once every section given before it has settled; a failure stays its own. */
  run<T>(section: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(section)
    this.#tail = result.catch(() => undefined)
    return result
  }
}

/**
 * One Mutex per key (a case id, an agent id, a register name), so that sections on different
 * keys run side by side. A key's lock is dropped once nothing waits on it, so the map holds only
 * the keys in use.
 */
export class KeyedMutex<K = string> {
  readonly #locks = new Map<K, { mutex: Mutex; pending: number }>()

  run<T>(key: K, section: () => Promise<T>): Promise<T> {
    let lock = this.#locks.get(key)
    if (lock === undefined) {
      lock = { mutex: new Mutex(), pending: 0 }
      this.#locks.set(key, lock)
    }
    const held = lock
    held.pending += 1
    return held.mutex.run(section).finally(() => {
      held.pending -= 1
      if (held.pending === 0 && this.#locks.get(key) === held) this.#locks.delete(key)
    })
  }

  /** How many keys have a section running or waiting (for tests and metrics). */
  get size(): number {
    return this.#locks.size
  }
}
