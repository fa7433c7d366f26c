/**
 * The service table: named classes of well-known ports. A usage bucket names a service from this
 * list and nothing else, so a port outside it never leaves the host (it becomes `other-tcp` or
 * `other-udp`). Order matters only for display.
 */
export interface ServiceDefinition {
  name: string
  tcp?: number[]
  udp?: number[]
}

export const SERVICE_TABLE: readonly ServiceDefinition[] = [
  { name: 'http', tcp: [80, 8080, 8000] },
  { name: 'https', tcp: [443, 8443] },
  { name: 'quic', udp: [443] },
  { name: 'dns', tcp: [53], udp: [53] },
  { name: 'dns-over-tls', tcp: [853] },
  { name: 'mdns', udp: [5353] },
  { name: 'llmnr', tcp: [5355], udp: [5355] },
  { name: 'ntp', udp: [123] },
  { name: 'dhcp', udp: [67, 68, 546, 547] },
  { name: 'smtp', tcp: [25, 465, 587] },
  { name: 'imap', tcp: [143, 993] },
  { name: 'pop3', tcp: [110, 995] },
  { name: 'ssh', tcp: [22] },
  { name: 'telnet', tcp: [23] },
  { name: 'ftp', tcp: [20, 21, 990] },
  { name: 'rdp', tcp: [3389], udp: [3389] },
  { name: 'vnc', tcp: [5900] },
  { name: 'smb', tcp: [139, 445] },
  { name: 'netbios', udp: [137, 138] },
  { name: 'ldap', tcp: [389, 636, 3268, 3269], udp: [389] },
  { name: 'kerberos', tcp: [88, 464], udp: [88, 464] },
  { name: 'msrpc', tcp: [135] },
  { name: 'snmp', udp: [161, 162] },
  { name: 'syslog', tcp: [6514], udp: [514] },
  { name: 'sip', tcp: [5060, 5061], udp: [5060] },
  { name: 'ipsec', udp: [500, 4500] },
  { name: 'openvpn', tcp: [1194], udp: [1194] },
  { name: 'wireguard', udp: [51820] },
  { name: 'ipp', tcp: [631] },
  { name: 'printer', tcp: [515, 9100] },
  { name: 'mssql', tcp: [1433] },
  { name: 'mysql', tcp: [3306] },
  { name: 'postgresql', tcp: [5432] },
  { name: 'xmpp', tcp: [5222, 5269] },
  { name: 'proxy', tcp: [3128] },
  { name: 'ms-teams', udp: [3478, 3479, 3480, 3481] },
]

/** Buckets that are not a named service. */
export const OTHER_SERVICES = ['other-tcp', 'other-udp', 'icmp', 'icmpv6', 'other'] as const

export const SERVICE_NAMES: readonly string[] = [
  ...SERVICE_TABLE.map((s) => s.name),
  ...OTHER_SERVICES,
]
