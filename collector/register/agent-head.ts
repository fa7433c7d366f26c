/**
 * ITSD's register head for agents, with their grants poll: the latest signed head and the
 * consistency proof from the head the agent kept. Agents keep each head they accept, so a
 * register later cut or rewritten below it (re-signed or not) shows on every agent's health.
 * Only `itsd`: OIOS's register is never shown to agents.
 */
import type { RegisterHeadAnswer } from '../../protocol/v1.ts'
import type { Register } from './register.ts'

/**
 * The answer for an agent that kept the head at `keptSize` (0: none). Undefined while the
 * register has no signed head, or cannot give one (unreadable or failing its own checks: the
 * agent then keeps what it has and the operator sees the collector's error).
 */
export async function agentRegisterHead(
  register: Register,
  keptSize: number,
  log?: { warn(obj: object, msg: string): void },
): Promise<RegisterHeadAnswer | undefined> {
  let answer: Awaited<ReturnType<Register['signedHead']>>
  try {
    answer = await register.signedHead('itsd', keptSize === 0 ? undefined : keptSize)
  } catch (err) {
    log?.warn({ err }, 'the register head cannot be given to agents')
    return undefined
  }
  const { head, proof } = answer
  if (head === undefined) return undefined
  const { x, kty, crv, kid } = register.publicKeyJwk()
  return {
    head: {
      register: 'itsd',
      size: head.size,
      root: head.root,
      ts: head.ts,
      signature: head.signature,
    },
    proof,
    public_key: { kty: kty ?? 'OKP', crv: crv ?? 'Ed25519', x: x ?? '', ...(kid ? { kid } : {}) },
  }
}
