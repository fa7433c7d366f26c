/**
 * The test hosts' servers, run inside a network namespace (`ip netns exec NS node servers.ts`):
 * an HTTP server and a small authoritative DNS responder on UDP 53. Prints one line, `ready`, on
 * stdout once both listen; SIGTERM stops it.
 *
 *   servers.ts --http-port 80 --answer 10.99.1.3
 *
 * HTTP: `GET /bytes/N` answers N bytes, anything else a short text. DNS: every A question is
 * answered with the `--answer` address, anything else with no answer (NOERROR, empty).
 */
import { createSocket } from 'node:dgram'
import { createServer } from 'node:http'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    'http-port': { type: 'string', default: '80' },
    'dns-port': { type: 'string', default: '53' },
    answer: { type: 'string', default: '127.0.0.1' },
  },
})

const httpPort = Number(values['http-port'])
const dnsPort = Number(values['dns-port'])
const answer = (values.answer ?? '127.0.0.1').split('.').map(Number)

const http = createServer((request, response) => {
  const match = /^\/bytes\/(\d+)$/.exec(request.url ?? '')
  const body = match
    ? Buffer.alloc(Number(match[1]), 'x')
    : Buffer.from('hello from the test host\n')
  response.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length })
  response.end(body)
})
http.keepAliveTimeout = 1000

/** The end of the question section (after QNAME, QTYPE, QCLASS), or -1 when it is malformed. */
function questionEnd(query: Buffer): number {
  let offset = 12
  while (offset < query.length) {
    const length = query[offset] ?? 0
    if (length === 0) return offset + 5 <= query.length ? offset + 5 : -1
    if (length >= 0xc0) return -1
    offset += length + 1
  }
  return -1
}

const dns = createSocket('udp4')
dns.on('message', (query, peer) => {
  if (query.length < 12 || query.readUInt16BE(4) !== 1) return
  const end = questionEnd(query)
  if (end < 0) return
  const qtype = query.readUInt16BE(end - 4)
  const withAnswer = qtype === 1
  const header = Buffer.alloc(12)
  query.copy(header, 0, 0, 2) // id
  header.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x0100), 2) // QR, AA, RD copied
  header.writeUInt16BE(1, 4) // QDCOUNT
  header.writeUInt16BE(withAnswer ? 1 : 0, 6) // ANCOUNT
  const record = Buffer.alloc(16)
  record.writeUInt16BE(0xc00c, 0) // name: pointer to the question
  record.writeUInt16BE(1, 2) // type A
  record.writeUInt16BE(1, 4) // class IN
  record.writeUInt32BE(60, 6) // TTL
  record.writeUInt16BE(4, 10)
  for (let i = 0; i < 4; i++) record[12 + i] = answer[i] ?? 0
  const reply = Buffer.concat([header, query.subarray(12, end), ...(withAnswer ? [record] : [])])
  dns.send(reply, peer.port, peer.address)
})

let listening = 0
const ready = () => {
  listening += 1
  if (listening === 2) process.stdout.write('ready\n')
}
http.listen(httpPort, '0.0.0.0', ready)
dns.bind(dnsPort, '0.0.0.0', ready)

process.on('SIGTERM', () => {
  http.closeAllConnections()
  http.close()
  dns.close()
  process.exit(0)
})
