// The PROXY protocol on listen (`proxyProtocol: true | 'optional'`): the addresses a load
// balancer reports replace the connection's own, `socket.proxy` carries the header, the bytes
// after it are the connection's first (plain data or the TLS handshake), and anything that is not
// a header closes the connection at once, never shown to JS. Peers: node:net writing headers
// built here by the specification, and a real HAProxy (send-proxy, send-proxy-v2 with CRC32C and
// a unique id, send-proxy-v2-ssl), in front of plain and TLS listeners.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'

import test, { type ExecutionContext } from 'ava'

import type { ListenOptions, ProxyHeader, Socket, SocketContextOptions } from '..'

import { startHaproxy } from './helpers/haproxy'
import { type Hooks, Tracker, collect, newContext, nodeConnect, once } from './helpers/net'
import { loose } from './helpers/util'
import { fixture } from './helpers/tls'

const SERVER = { key: fixture('server.key'), cert: fixture('server.pem') }
const CA = fixture('ca.pem')
const QUICK_CLOSE_MS = 2000 // the handshake timeout, which bounds a slow header, is 10 s

/** The socket's PROXY header, which these specs expect to be there. */
function headerOf(socket: Socket): ProxyHeader {
  if (socket.proxy === undefined) throw new Error('the socket has no PROXY header')
  return socket.proxy
}

const echo: Hooks = { data: (socket, data) => socket.send(data) }

/** A v2 header: PROXY over TCP/IPv4 from 203.0.113.7:40000 to 198.51.100.1:443, with TLVs. */
function v2Header(tlvs: Array<[number, Buffer]> = []): Buffer {
  const addresses = Buffer.from([203, 0, 113, 7, 198, 51, 100, 1, 0x9c, 0x40, 0x01, 0xbb])
  const body = Buffer.concat([addresses, ...tlvs.map(([type, value]) => Buffer.concat([Buffer.from([type, value.length >> 8, value.length & 255]), value]))])
  const fixed = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, body.length >> 8, body.length & 255])
  return Buffer.concat([fixed, body])
}

function proxyServer(t: ExecutionContext, options: ListenOptions, hooks = echo, contextOptions: SocketContextOptions = {}) {
  const { loop, ctx } = newContext(t, contextOptions)
  const tracker = new Tracker(ctx, hooks)
  const listener = ctx.listen('127.0.0.1', 0, options)
  return { loop, ctx, tracker, listener, port: listener.port as number }
}

/** Writes `bytes` on a fresh connection and expects the server to close it at once. */
async function closedAtOnce(t: ExecutionContext, port: number, bytes: Buffer, what: string): Promise<void> {
  const raw = await nodeConnect(t, port)
  const closed = once(raw, 'close', QUICK_CLOSE_MS + 1000)
  collect(raw)
  const sentAt = performance.now()
  raw.write(bytes)
  await closed
  const after = performance.now() - sentAt
  t.true(after < QUICK_CLOSE_MS, `${what}: closed after ${after.toFixed(0)} ms, not at once`)
}

test('a v1 header: the socket reports the addresses it carries, and the bytes after it are the first onData', async (t) => {
  const server = proxyServer(t, { proxyProtocol: true })
  const raw = await nodeConnect(t, server.port)
  raw.write('PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\nhello')
  const open = await server.tracker.wait('open')
  const socket = open.socket
  t.is(open.args[1], '203.0.113.7', 'onOpen gets the client address')
  t.is(socket.remoteAddress, '203.0.113.7')
  t.is(socket.remotePort, 40000)
  t.is(socket.localAddress, '198.51.100.1')
  t.is(socket.localPort, 443)
  t.deepEqual(
    { ...socket.proxy, tlvs: [...headerOf(socket).tlvs] },
    { version: 1, command: 'PROXY', sourceAddress: '203.0.113.7', sourcePort: 40000, destinationAddress: '198.51.100.1', destinationPort: 443, tlvs: [] },
  )
  t.is(String(await once(raw, 'data')), 'hello', 'the bytes after the header are the first data, echoed')
  t.is(server.tracker.received(socket).toString(), 'hello')
})

test('a v2 header with TLVs, split across writes: proxy.tlvs maps each type to its value; IPv6 and UNKNOWN keep working', async (t) => {
  const server = proxyServer(t, { proxyProtocol: true })
  const header = v2Header([
    [0x01, Buffer.from('h2')],
    [0x02, Buffer.from('example.com')],
    [0xe0, Buffer.from([1, 2, 3])],
  ])
  const raw = await nodeConnect(t, server.port)
  raw.write(header.subarray(0, 7))
  await new Promise((resolve) => setTimeout(resolve, 50))
  raw.write(Buffer.concat([header.subarray(7), Buffer.from('after')]))
  const { socket } = await server.tracker.wait('open')
  t.is(socket.remoteAddress, '203.0.113.7')
  t.is(socket.remotePort, 40000)
  t.is(headerOf(socket).version, 2)
  t.is(headerOf(socket).command, 'PROXY')
  t.deepEqual([...headerOf(socket).tlvs.keys()], [0x01, 0x02, 0xe0])
  t.is(headerOf(socket).tlvs.get(0x02)?.toString(), 'example.com')
  t.deepEqual([...(headerOf(socket).tlvs.get(0xe0) ?? [])], [1, 2, 3])
  t.is(String(await once(raw, 'data')), 'after')

  const v6 = await nodeConnect(t, server.port)
  v6.write('PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n')
  const second = (await server.tracker.wait('open', undefined, 5000, 1)).socket
  t.is(second.remoteAddress, '2001:db8::1')
  t.is(second.localPort, 2)

  const unknown = await nodeConnect(t, server.port)
  unknown.write('PROXY UNKNOWN\r\n')
  const third = (await server.tracker.wait('open', undefined, 5000, 2)).socket
  t.is(third.remoteAddress, '127.0.0.1', 'UNKNOWN keeps the connection\'s own address')
  t.is(headerOf(third).sourceAddress, undefined)
})

test('not a header: each kind closed at once, never shown to JS, counted in rejectedConnections; real clients unaffected', async (t) => {
  const server = proxyServer(t, { proxyProtocol: true })
  const good = await nodeConnect(t, server.port)
  good.write('PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\nping')
  t.is(String(await once(good, 'data')), 'ping')
  const badCrc = v2Header([[0x03, Buffer.from([0, 0, 0, 0])]])
  const kinds: Array<[string, Buffer]> = [
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    ['a TLS ClientHello', Buffer.from([0x16, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3])],
    ['a v1 line over 107 bytes', Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}\r\n`)],
    ['a v1 line with a bad address', Buffer.from('PROXY TCP4 300.0.0.1 10.0.0.2 1 2\r\n')],
    ['a v1 line ending in CR without LF', Buffer.from('PROXY UNKNOWN\rX')],
    ['a v2 header of version 3', Buffer.concat([v2Header().subarray(0, 12), Buffer.from([0x31, 0x11, 0, 12]), Buffer.alloc(12)])],
    ['a v2 header with a bad CRC32C', badCrc],
    ['a v2 TLV past the header', Buffer.concat([v2Header().subarray(0, 14), Buffer.from([0, 15]), v2Header().subarray(16), Buffer.from([0x05, 0, 9])])],
  ]
  for (const [what, bytes] of kinds) await closedAtOnce(t, server.port, bytes, what)
  t.is(server.listener.rejectedConnections, kinds.length)
  t.is(server.tracker.count('open'), 1, 'only the real client was shown to JS')
  good.write('pong')
  t.is(String(await once(good, 'data')), 'pong')
})

test("proxyProtocol 'optional': a connection without a header is served as it is (health checks), one with a header as above", async (t) => {
  const server = proxyServer(t, { proxyProtocol: 'optional' })
  const plain = await nodeConnect(t, server.port)
  plain.write('GET /health HTTP/1.1\r\n\r\n')
  t.is(String(await once(plain, 'data')), 'GET /health HTTP/1.1\r\n\r\n')
  const first = (await server.tracker.wait('open')).socket
  t.is(first.proxy, undefined)
  t.is(first.remoteAddress, '127.0.0.1')
  const proxied = await nodeConnect(t, server.port)
  proxied.write('PROXY TCP4 10.1.1.1 10.2.2.2 5 6\r\nx')
  t.is(String(await once(proxied, 'data')), 'x')
  const second = (await server.tracker.wait('open', undefined, 5000, 1)).socket
  t.is(second.remoteAddress, '10.1.1.1')
})

test('a TLS listener with the PROXY protocol: the header first, then the handshake (ClientHello in the same write works too)', async (t) => {
  const server = proxyServer(t, { proxyProtocol: true }, echo, { tls: SERVER })
  const raw = net.connect(server.port, '127.0.0.1')
  t.teardown(() => raw.destroy())
  await once(raw, 'connect')
  // The header is written under node's TLS layer, right before the ClientHello it then sends.
  raw.write(v2Header([[0x01, Buffer.from('http/1.1')]]))
  const client = tls.connect({ socket: raw, ca: CA, servername: 'localhost' })
  client.on('error', () => {})
  await once(client, 'secureConnect')
  client.write('over tls')
  t.is(String(await once(client, 'data')), 'over tls')
  const { socket } = await server.tracker.wait('open')
  t.true(socket.isTls)
  t.is(socket.remoteAddress, '203.0.113.7')
  t.is(headerOf(socket).tlvs.get(0x01)?.toString(), 'http/1.1')
})

test('maxConnections: one more is closed at once and counted in droppedConnections; once one closes there is room again', async (t) => {
  const server = proxyServer(t, { maxConnections: 2 })
  const a = await nodeConnect(t, server.port)
  const b = await nodeConnect(t, server.port)
  await server.tracker.wait('open', undefined, 5000, 1)
  const c = await nodeConnect(t, server.port)
  collect(c)
  await once(c, 'close', QUICK_CLOSE_MS)
  t.is(server.listener.droppedConnections, 1)
  t.is(server.tracker.count('open'), 2)
  a.destroy()
  await server.tracker.wait('close')
  const d = await nodeConnect(t, server.port)
  d.write('room')
  t.is(String(await once(d, 'data')), 'room')
  b.destroy()
  server.listener.close()
  t.is(server.listener.droppedConnections, 1, 'readable once closed')
})

test('listen options are validated, naming the option', (t) => {
  const { ctx } = newContext(t)
  const bad: Array<[Record<string, unknown>, string, typeof TypeError]> = [
    [{ exclusive: 1 }, 'options.exclusive', TypeError],
    [{ ipv6Only: 'yes' }, 'options.ipv6Only', TypeError],
    [{ backlog: 0 }, 'options.backlog', RangeError],
    [{ backlog: 1.5 }, 'options.backlog', RangeError],
    [{ maxConnections: -1 }, 'options.maxConnections', RangeError],
    [{ proxyProtocol: 'required' }, 'options.proxyProtocol', TypeError],
  ]
  for (const [options, name, type] of bad) {
    const err = t.throws(() => ctx.listen('127.0.0.1', 0, loose(options)), { instanceOf: type })
    t.true(err?.message.includes(`"${name}"`), err?.message)
  }
  t.throws(() => loose(ctx).listen('127.0.0.1', 0, 'exclusive'), { instanceOf: TypeError })
  t.throws(() => ctx.listen('127.0.0.1', 0, 2), { instanceOf: RangeError })
})

test('listen options: exclusive refuses a shared port, ipv6Only leaves IPv4 out, backlog is taken', async (t) => {
  const { ctx } = newContext(t)
  ctx.onData((socket, data) => socket.send(data))
  const first = ctx.listen('127.0.0.1', 0, { exclusive: true, backlog: 16 })
  const err = t.throws<Error & { code?: string }>(() => ctx.listen('127.0.0.1', first.port, { exclusive: true }))
  t.is(err?.code, 'EADDRINUSE')
  // A listening socket's Send-Q in ss is its backlog.
  const listing = spawnSync('ss', ['-ltnH', `sport = :${first.port}`], { encoding: 'utf8' })
  t.is(listing.status, 0, `ss (iproute2) is needed here: ${listing.error}`)
  t.is(listing.stdout.trim().split(/\s+/)[2], '16', listing.stdout)
  const v6only = ctx.listen('::', 0, { ipv6Only: true })
  const refused = net.connect(v6only.port, '127.0.0.1')
  const error = await once<NodeJS.ErrnoException>(refused, 'error')
  t.is(error.code, 'ECONNREFUSED', 'IPv4 does not reach an ipv6Only listener')
  const v6 = await nodeConnect(t, v6only.port, '::1')
  v6.write('six')
  t.is(String(await once(v6, 'data')), 'six')
})

// --- a real HAProxy in front ------------------------------------------------------------------

/** HAProxy in front of `server` with `serverOptions`; one client round trip through it. */
async function throughHaproxy(t: ExecutionContext, server: ReturnType<typeof proxyServer>, serverOptions: string, extra: { bindOptions?: string; frontendLines?: string[] } = {}) {
  const haproxy = await startHaproxy(t, { backendPort: server.port, serverOptions, ...extra })
  return haproxy.port
}

test('behind HAProxy send-proxy (v1): the client address is HAProxy\'s client, data flows both ways', async (t) => {
  const server = proxyServer(t, { proxyProtocol: true })
  const port = await throughHaproxy(t, server, 'send-proxy')
  const client = await nodeConnect(t, port)
  client.write('via haproxy')
  t.is(String(await once(client, 'data')), 'via haproxy')
  const { socket } = await server.tracker.wait('open')
  t.is(headerOf(socket).version, 1)
  t.is(socket.remoteAddress, '127.0.0.1')
  t.is(socket.remotePort, client.localPort ?? -1, 'the port of the client that connected to HAProxy')
  t.is(socket.localPort, port, 'the port the client connected to')
})

test('behind HAProxy send-proxy-v2 with crc32c and unique-id TLVs: the checksum checks out, the id arrives', async (t) => {
  const server = proxyServer(t, { proxyProtocol: true })
  const port = await throughHaproxy(t, server, 'send-proxy-v2 proxy-v2-options crc32c,unique-id', {
    frontendLines: ['unique-id-format TEST-%cp'],
  })
  const client = await nodeConnect(t, port)
  client.write('v2')
  t.is(String(await once(client, 'data')), 'v2')
  const { socket } = await server.tracker.wait('open')
  t.is(headerOf(socket).version, 2)
  t.is(headerOf(socket).command, 'PROXY')
  t.is(socket.remotePort, client.localPort ?? -1)
  t.is(headerOf(socket).tlvs.get(0x05)?.toString(), `TEST-${client.localPort ?? -1}`)
  t.false(headerOf(socket).tlvs.has(0x03), 'a CRC32C that checked out is not shown')
  t.is(server.listener.rejectedConnections, 0)
})

test('behind HAProxy terminating TLS with send-proxy-v2-ssl: the SSL TLV and its version sub-TLV arrive', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'usockets-pem-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const pem = path.join(dir, 'server.pem')
  fs.writeFileSync(pem, Buffer.concat([fixture('server.pem'), fixture('server.key')]))
  const server = proxyServer(t, { proxyProtocol: true })
  const port = await throughHaproxy(t, server, 'send-proxy-v2-ssl', { bindOptions: `ssl crt ${pem}` })
  const client = tls.connect({ port, host: '127.0.0.1', ca: CA, servername: 'localhost' })
  t.teardown(() => client.destroy())
  await once(client, 'secureConnect')
  client.write('decrypted by haproxy')
  t.is(String(await once(client, 'data')), 'decrypted by haproxy')
  const { socket } = await server.tracker.wait('open')
  t.false(socket.isTls, 'HAProxy terminated TLS; our socket is plain')
  t.true(headerOf(socket).tlvs.has(0x20), 'the SSL TLV')
  t.is(headerOf(socket).tlvs.get(0x21)?.toString(), client.getProtocol() ?? undefined, 'its version sub-TLV names the client\'s TLS version')
})

test('a TLS listener behind HAProxy send-proxy-v2 in TCP mode: the TLS session passes through, the addresses are the client\'s', async (t) => {
  const server = proxyServer(t, { proxyProtocol: true }, echo, { tls: SERVER })
  const port = await throughHaproxy(t, server, 'send-proxy-v2')
  const client = tls.connect({ port, host: '127.0.0.1', ca: CA, servername: 'localhost' })
  t.teardown(() => client.destroy())
  await once(client, 'secureConnect')
  client.write('end to end')
  t.is(String(await once(client, 'data')), 'end to end')
  const { socket } = await server.tracker.wait('open')
  t.true(socket.isTls)
  t.is(socket.remotePort, client.localPort ?? -1)
  t.is(headerOf(socket).version, 2)
})
