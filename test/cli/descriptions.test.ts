/** Every command and every option of `tally` says what it is for in --help. */
import type { Command } from 'commander'
import { describe, expect, it } from 'vitest'
import { program } from '../../cli/main.ts'

function* commands(command: Command, path: string[] = []): Generator<[string, Command]> {
  const here = [...path, command.name()]
  yield [here.join(' '), command]
  for (const sub of command.commands) yield* commands(sub, here)
}

describe('tally --help', () => {
  const all = [...commands(program())]

  it('walks the whole program', () => {
    expect(all.length).toBeGreaterThan(30)
  })

  it.each(all.map(([name, command]) => [name, command] as const))(
    '%s has a description',
    (_, command) => {
      expect(command.description().trim()).not.toBe('')
    },
  )

  it('every option and argument of every command has a description', () => {
    const missing: string[] = []
    for (const [name, command] of all) {
      for (const option of command.options)
        if (option.description.trim() === '') missing.push(`${name} ${option.flags}`)
      for (const argument of command.registeredArguments)
        if (argument.description.trim() === '') missing.push(`${name} <${argument.name()}>`)
    }
    expect(missing).toEqual([])
  })
})
