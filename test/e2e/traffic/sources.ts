/**
 * Traffic sources on loopback for capture tests: an HTTP server and a small DNS server, each on
 * 127.0.0.1 and ::1, and the external programs (curl, dig, ping) that talk to them. Nothing here
 * sends a packet anywhere but 127.0.0.1 and ::1.
 */
import { execFile, execFileSync } from 'node:child_process'
import { createSocket, type Socket } from 'node:dgram'
import { createServer, type Server } from 'node:http'
import { promisify } from 'node:util'
import { parseAddress } from '../../../agent/decode/address.ts'

const run = promisify(execFile)

export const LOOPBACK = ['127.0.0.1', '::1'] as const

export function which(program: string): string | undefined {
  try {
    return execFileSync('which', [program], { encoding: 'utf8' }).trim() || undefined
  } catch {
    return undefined
  }
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error)
    server.once('error', onError)
    server.listen({ port, host, exclusive: true }, () => {
      server.off('error', onError)
      resolve()
    })
  })
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  })
}

export interface Servers {
  port: number
  close: () => Promise<void>
}

/**
 * An HTTP server on 127.0.0.1 and ::1, on the first of `ports` free on both. `GET /N` answers
 * N bytes.
 */
export async function startHttpServers(ports: readonly number[]): Promise<Servers> {
  const errors: string[] = []
  for (const port of ports) {
    const servers: Server[] = []
    try {
      for (const host of LOOPBACK) {
        const server = createServer((request, response) => {
          const size = Number((request.url ?? '/0').slice(1)) || 0
          response.writeHead(200, {
            'content-type': 'application/octet-stream',
            'content-length': size,
          })
          response.end(Buffer.alloc(size, 0x61))
        })
        servers.push(server)
        await listen(server, port, host)
      }
      return { port, close: async () => void (await Promise.all(servers.map(closeServer))) }
    } catch (error) {
      errors.push(String(error))
      await Promise.all(servers.map((s) => (s.listening ? closeServer(s) : undefined)))
    }
  }
  throw new Error(`no port of ${ports.join(', ')} is free on 127.0.0.1 and ::1: ${errors}`)
}

export const DNS_A = '192.0.2.53'
export const DNS_AAAA = '2001:db8::53'

/**
 * The answer to a DNS query: the question echoed, and for A or AAAA one record with a fixed
 * address (NOERROR with no answer for other types). Undefined for what is not a one-question
 * query.
 */
export function dnsAnswer(query: Uint8Array): Uint8Array | undefined {
  if (query.length < 12) return undefined
  const view = new DataView(query.buffer, query.byteOffset, query.byteLength)
  if ((view.getUint16(2) & 0x8000) !== 0 || view.getUint16(4) !== 1) return undefined
  let p = 12
  for (;;) {
    const length = query[p]
    if (length === undefined || (length & 0xc0) !== 0) return undefined
    p += 1 + length
    if (length === 0) break
  }
  if (p + 4 > query.length) return undefined
  const type = view.getUint16(p)
  const question = query.subarray(12, p + 4)
  const data = type === 1 ? parseAddress(DNS_A) : type === 28 ? parseAddress(DNS_AAAA) : undefined
  const answer = data === undefined ? new Uint8Array(0) : new Uint8Array(12 + data.length)
  if (data !== undefined) {
    const a = new DataView(answer.buffer)
    a.setUint16(0, 0xc00c) // the name: a pointer to the question's
    a.setUint16(2, type)
    a.setUint16(4, 1) // IN
    a.setUint32(6, 60)
    a.setUint16(10, data.length)
    answer.set(data, 12)
  }
  const out = new Uint8Array(12 + question.length + answer.length)
  const header = new DataView(out.buffer)
  header.setUint16(0, view.getUint16(0))
  // QR, the query's opcode and RD, RA; NOERROR.
  header.setUint16(2, 0x8080 | (view.getUint16(2) & 0x7900))
  header.setUint16(4, 1)
  header.setUint16(6, data === undefined ? 0 : 1)
  out.set(question, 12)
  out.set(answer, 12 + question.length)
  return out
}

function bindUdp(socket: Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error)
    socket.once('error', onError)
    socket.bind({ port, address, exclusive: true }, () => {
      socket.off('error', onError)
      resolve()
    })
  })
}

/** A DNS server (UDP) on 127.0.0.1 and ::1, on the first of `ports` free on both. */
export async function startDnsServers(ports: readonly number[]): Promise<Servers> {
  const errors: string[] = []
  for (const port of ports) {
    const sockets: Socket[] = []
    try {
      for (const host of LOOPBACK) {
        const socket = host.includes(':')
          ? createSocket({ type: 'udp6', ipv6Only: true })
          : createSocket('udp4')
        sockets.push(socket)
        socket.on('message', (message, remote) => {
          const reply = dnsAnswer(message)
          if (reply !== undefined) socket.send(reply, remote.port, remote.address)
        })
        await bindUdp(socket, port, host)
      }
      return {
        port,
        close: async () => {
          await Promise.all(sockets.map((s) => new Promise<void>((r) => s.close(() => r()))))
        },
      }
    } catch (error) {
      errors.push(String(error))
      for (const s of sockets) {
        try {
          s.close()
        } catch {
          // not bound
        }
      }
    }
  }
  throw new Error(`no UDP port of ${ports.join(', ')} is free on 127.0.0.1 and ::1: ${errors}`)
}

/** A UDP port that nothing listens on (on both loopback addresses) and that `accept`s. */
export async function unusedUdpPort(accept: (port: number) => boolean): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 40000 + Math.floor(Math.random() * 10000)
    if (!accept(port)) continue
    const sockets = [createSocket('udp4'), createSocket({ type: 'udp6', ipv6Only: true })]
    try {
      await bindUdp(sockets[0] as Socket, port, '127.0.0.1')
      await bindUdp(sockets[1] as Socket, port, '::1')
      return port
    } catch {
      // taken: try another
    } finally {
      for (const s of sockets) {
        try {
          s.close()
        } catch {
          // not bound
        }
      }
    }
  }
  throw new Error('no unused UDP port found')
}

/** One datagram from an ephemeral port to `address:port` (nothing answers: ICMP unreachable). */
export async function sendDatagram(address: string, port: number, size: number): Promise<void> {
  const socket = createSocket({ type: address.includes(':') ? 'udp6' : 'udp4' })
  try {
    await new Promise<void>((resolve, reject) =>
      socket.send(Buffer.alloc(size, 0x42), port, address, (error) =>
        error ? reject(error) : resolve(),
      ),
    )
  } finally {
    socket.close()
  }
}

/** `curl` GETs of `sizes` bytes each, one connection per call. */
export async function curlGet(address: string, port: number, size: number): Promise<number> {
  const host = address.includes(':') ? `[${address}]` : address
  const { stdout } = await run(
    'curl',
    [
      '--globoff',
      '--noproxy',
      '*',
      '--silent',
      '--show-error',
      '--max-time',
      '10',
      '--output',
      '/dev/null',
      '--write-out',
      '%{size_download}',
      `http://${host}:${port}/${size}`,
    ],
    { timeout: 15_000 },
  )
  return Number(stdout.trim())
}

/** `dig` for one name and type at `server`; returns the answer's text. */
export async function dig(
  server: string,
  port: number,
  name: string,
  type: 'A' | 'AAAA',
): Promise<string> {
  const { stdout } = await run(
    'dig',
    [`@${server}`, '-p', String(port), '+tries=1', '+time=3', '+short', name, type],
    { timeout: 15_000 },
  )
  return stdout.trim()
}

export async function ping(address: string, count: number): Promise<string> {
  const { stdout } = await run(
    'ping',
    [address.includes(':') ? '-6' : '-4', '-c', String(count), '-i', '0.05', '-W', '2', address],
    { timeout: 15_000 },
  )
  return stdout
}
