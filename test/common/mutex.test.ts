import { describe, expect, it } from 'vitest'
import { KeyedMutex, Mutex } from '../../common/mutex.ts'

const tick = () => new Promise((resolve) => setTimeout(resolve, 1))

describe('Mutex', () => {
  it('runs read-modify-write sections one after the other', async () => {
    const mutex = new Mutex()
    let balance = 0
    const add = () =>
      mutex.run(async () => {
        const read = balance
        await tick()
        balance = read + 1
      })
    await Promise.all(Array.from({ length: 20 }, add))
    expect(balance).toBe(20)
  })

  it('keeps going after a section fails, and the failure reaches only its caller', async () => {
    const mutex = new Mutex()
    const failed = mutex.run(async () => {
      throw new Error('first')
    })
    const next = mutex.run(async () => 'second')
    await expect(failed).rejects.toThrow('first')
    await expect(next).resolves.toBe('second')
  })
})

describe('KeyedMutex', () => {
  it('serialises sections of one key and lets other keys run alongside', async () => {
    const locks = new KeyedMutex()
    const order: string[] = []
    let releaseA: () => void = () => {}
    const a1 = locks.run('a', () => {
      order.push('a1 start')
      return new Promise<void>((resolve) => {
        releaseA = resolve
      }).then(() => {
        order.push('a1 end')
      })
    })
    const a2 = locks.run('a', async () => {
      order.push('a2')
    })
    const b = locks.run('b', async () => {
      order.push('b')
    })
    await b
    expect(order).toEqual(['a1 start', 'b'])
    releaseA()
    await Promise.all([a1, a2])
    expect(order).toEqual(['a1 start', 'b', 'a1 end', 'a2'])
  })

  it('forgets a key once nothing waits on it', async () => {
    const locks = new KeyedMutex()
    await Promise.all([locks.run('a', tick), locks.run('a', tick), locks.run('b', tick)])
    expect(locks.size).toBe(0)
    await expect(locks.run('a', async () => Promise.reject(new Error('no')))).rejects.toThrow('no')
    expect(locks.size).toBe(0)
  })
})
