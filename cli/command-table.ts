/**
 * The command line as data: each family of commands (cli/commands/*.ts) is a tree of command
 * specs, and `buildCommand` turns a spec into commander's Command. A newcomer reads what a
 * command takes and what it calls in one place, and the help text comes from the same data.
 */
import { Command, Option } from 'commander'

export interface OptionSpec {
  /** As commander spells them: '-f, --file <file>', '--to <who...>', '--no-state'. */
  readonly flags: string
  readonly description: string
  /** The command refuses to run without it. */
  readonly required?: boolean
  readonly default?: string | number | boolean | readonly string[]
  /** Turns the text given into the option's value (Number). */
  readonly parse?: (value: string) => unknown
  readonly choices?: readonly string[]
  /** The environment variable that gives the option when the flag is absent. */
  readonly env?: string
}

export interface ArgumentSpec {
  /** '<name>' when required, '[name]' when not. */
  readonly name: string
  readonly description: string
}

/**
 * One command: its words, and what it does with its options and arguments. The values commander
 * parsed reach `run` as the command declares them (commander does not type them); `options` are
 * the options' values by camel-case name, `args` the arguments in order.
 */
export interface CommandSpec<
  O extends object = object,
  A extends readonly (string | undefined)[] = readonly (string | undefined)[],
> {
  readonly name: string
  readonly description: string
  /** Runs when the parent command is given without a subcommand. */
  readonly isDefault?: boolean
  readonly arguments?: readonly ArgumentSpec[]
  readonly options?: readonly OptionSpec[]
  /** Shown after the generated help. */
  readonly helpAfter?: string
  readonly commands?: readonly CommandEntry[]
  // A method, so that a table holds commands of different options (parameters compare both ways).
  run?(options: O, args: A): Promise<void>
}

/** A family built by its own component with commander (the agent's commands, agent/cli.ts). */
export interface BuiltCommand {
  readonly name: string
  readonly build: () => Command
}

export type CommandEntry = CommandSpec | BuiltCommand

function optionOf(spec: OptionSpec): Option {
  const option = new Option(spec.flags, spec.description)
  if (spec.required === true) option.makeOptionMandatory()
  if (spec.parse !== undefined) option.argParser(spec.parse)
  if (spec.choices !== undefined) option.choices(spec.choices)
  if (spec.env !== undefined) option.env(spec.env)
  if (spec.default !== undefined) option.default(spec.default)
  return option
}

export function buildCommand(entry: CommandEntry): Command {
  if ('build' in entry) return entry.build()
  const command = new Command(entry.name).description(entry.description)
  for (const argument of entry.arguments ?? [])
    command.argument(argument.name, argument.description)
  for (const option of entry.options ?? []) command.addOption(optionOf(option))
  if (entry.helpAfter !== undefined) command.addHelpText('after', entry.helpAfter)
  for (const sub of entry.commands ?? []) {
    command.addCommand(buildCommand(sub), {
      isDefault: !('build' in sub) && sub.isDefault === true,
    })
  }
  if (entry.run !== undefined) {
    command.action(async () => {
      await entry.run?.(command.opts(), command.processedArgs)
    })
  }
  return command
}
