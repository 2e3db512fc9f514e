// TLS sockets against real peers on loopback: our TLS listener with node:tls clients (and with our
// own TLS clients), our TLS connect with node:tls servers, and openssl where it is installed.
// API.md "SocketContext" (onOpen after the handshake, onConnectError for failed verification,
// SNI), "Socket" (isTls, alpnProtocol, servername, peerCertificate, write / send with TLS) and
// "TlsOptions". Certificates: test/fixtures/tls (its README.md says what each one is for).
import crypto from 'node:crypto'
import net from 'node:net'
import tls from 'node:tls'

import test from 'ava'

import { type ListenSocket, type Loop, Socket, SocketContext, type SocketContextOptions, type TlsOptions } from '..'

import {
  type Hooks,
  type TrackedEvent,
  Tracker,
  collect,
  deferred,
  newContext,
  nodeConnect,
  once,
  randomBytes,
  runNode,
  sha256,
  tmpSocketPath,
  until,
  withTimeout,
} from './helpers/net'
import {
  fixture,
  fixturePath,
  nodeTlsEchoServer,
  nodeTlsRequest,
  opensslAvailable,
  runOpensslClient,
  startOpensslServer,
} from './helpers/tls'
import { busyWait, jsonSummary, loose, looseClass, newLoop, sleep, typeError } from './helpers/util'

const MiB = 1024 * 1024

/** Trusts the test root that issued server.pem, wildcard.pem, other.pem, expired.pem... */
const CA = fixture('ca.pem').toString()
/** The default server: localhost, 127.0.0.1, ::1. */
const SERVER = { key: fixture('server.key'), cert: fixture('server.pem') }
const WILDCARD = { key: fixture('wildcard.key'), cert: fixture('wildcard.pem') }
const OTHER = { key: fixture('other.key'), cert: fixture('other.pem') }
const CLIENT_CERT = { key: fixture('client.key'), cert: fixture('client.pem') }

/** The DER bytes of a PEM certificate fixture (its first certificate). */
function der(name: string): Buffer {
  return new crypto.X509Certificate(fixture(name)).raw
}

/** Asserts that `value` is a Buffer holding exactly the DER of the certificate fixture `name`. */
function isCertificate(t: any, value: unknown, name: string, what: string): void {
  t.true(Buffer.isBuffer(value), `${what}: expected a Buffer, got ${typeof value}`)
  if (Buffer.isBuffer(value)) {
    const expected = der(name)
    t.true(value.equals(expected), `${what}: not the DER of ${name} (subject ${describeCert(value)})`)
  }
}

function describeCert(value: Buffer): string {
  try {
    return new crypto.X509Certificate(value).subject.replace(/\n/g, ', ')
  } catch {
    return `${value.length} bytes that are not a certificate`
  }
}

/** Server hooks that echo everything back and shut down once the peer ended. */
const ECHO: Hooks = {
  data(socket, data) {
    socket.send(data)
  },
  end(socket) {
    socket.shutdown()
  },
}

interface Server {
  loop: Loop
  ctx: SocketContext
  tracker: Tracker
  listener: ListenSocket
  port: number
}

/** Our TLS server on a fresh loop, listening on `host` (an ephemeral port). */
function tlsServer(t: any, tlsOptions: TlsOptions = SERVER, hooks: Hooks = ECHO, host = '127.0.0.1', contextOptions: SocketContextOptions = {}): Server {
  const { loop, ctx } = newContext(t, { tls: tlsOptions, ...contextOptions })
  const tracker = new Tracker(ctx, hooks)
  const listener = ctx.listen(host, 0)
  return { loop, ctx, tracker, listener, port: listener.port }
}

/** Another context on `loop` (our TLS client side), with a Tracker; closed when the test ends. */
function tlsClient(t: any, loop: Loop, tlsOptions: TlsOptions, hooks: Hooks = {}, contextOptions: SocketContextOptions = {}): { ctx: SocketContext; tracker: Tracker } {
  const ctx = new SocketContext(loop, { tls: tlsOptions, ...contextOptions })
  t.teardown(() => ctx.close())
  return { ctx, tracker: new Tracker(ctx, hooks) }
}

/** Like `until`, but the timeout message says where things stood (`state()`, read at the end). */
async function untilState(cond: () => boolean, what: string, state: () => string, ms = 5000): Promise<void> {
  try {
    await until(cond, what, ms)
  } catch (err) {
    throw new Error(`${(err as Error).message}; ${state()}`)
  }
}

/** Waits for the connect of `socket` to end: its onOpen or its onConnectError. */
async function settled(tracker: Tracker, socket: Socket, ms = 5000): Promise<TrackedEvent> {
  const outcome = () => tracker.log.find((e) => e.socket === socket && (e.event === 'open' || e.event === 'connectError'))
  await until(() => outcome() !== undefined, 'onOpen or onConnectError', ms)
  return outcome()!
}

/** Our client connects and must fail with onConnectError(socket, code < 0, err.code === `code`). */
async function expectConnectError(t: any, tracker: Tracker, socket: Socket, code: string): Promise<void> {
  const event = await settled(tracker, socket)
  if (event.event !== 'connectError') {
    t.fail(`expected onConnectError with ${code}, got onOpen (then: ${tracker.events(socket).join(',')})`)
    return
  }
  const [numeric, err] = event.args
  t.is(err?.code, code, `error: ${err?.message}`)
  t.true(err instanceof Error)
  t.is(typeof numeric, 'number')
  t.true(numeric < 0, `a TLS failure has a negative code, got ${numeric}`)
  t.is(err?.errno, numeric)
  t.false(socket.isEstablished)
  t.true(socket.isClosed)
  // Nothing else follows a failed connect.
  await sleep(50)
  t.deepEqual(tracker.events(socket), ['connectError'])
}

/** A node:tls client connected (handshake done) to 127.0.0.1:`port`; destroyed when the test ends. */
function nodeTlsConnect(t: any, port: number, options: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  const socket = tls.connect({ host: '127.0.0.1', port, ca: CA, ...options })
  t.teardown(() => {
    socket.destroy()
  })
  return withTimeout(
    new Promise<tls.TLSSocket>((resolve, reject) => {
      socket.once('error', reject)
      socket.once('secureConnect', () => {
        socket.off('error', reject)
        socket.on('error', () => {})
        resolve(socket)
      })
    }),
    5000,
    `a node:tls connect to port ${port}`,
  )
}

/** Sends `text` on a node:tls socket and waits until `expected` came back (echo). */
async function roundTrip(socket: tls.TLSSocket, text: string, expected = text): Promise<void> {
  let got = ''
  const onData = (chunk: Buffer) => (got += chunk.toString())
  socket.on('data', onData)
  try {
    socket.write(text)
    await until(() => got.length >= expected.length, `the echo of '${text}'`)
    if (got !== expected) throw new Error(`expected '${expected}' back, got '${got}'`)
  } finally {
    socket.off('data', onData)
  }
}

/**
 * A plain node:net server on 127.0.0.1 (not TLS); `onConnection` runs for each connection. Its
 * connections are destroyed and it is closed when the test ends.
 */
async function rawServer(t: any, onConnection: (socket: net.Socket) => void = () => {}): Promise<{ port: number; connections: net.Socket[] }> {
  const connections: net.Socket[] = []
  const server = net.createServer((socket) => {
    socket.on('error', () => {})
    connections.push(socket)
    onConnection(socket)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of connections) socket.destroy()
        server.close(() => resolve())
      }),
  )
  return { port: (server.address() as net.AddressInfo).port, connections }
}

/** A node:tls server on 127.0.0.1 that collects what each connection sends; closed when the test ends. */
async function nodeTlsSink(t: any, options: tls.TlsOptions = SERVER): Promise<{ port: number; connections: tls.TLSSocket[]; next(): Promise<tls.TLSSocket> }> {
  const connections: tls.TLSSocket[] = []
  const server = tls.createServer(options, (socket) => {
    socket.on('error', () => {})
    connections.push(socket)
  })
  server.on('tlsClientError', () => {})
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of connections) socket.destroy()
        server.close(() => resolve())
      }),
  )
  let handedOut = 0
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    async next() {
      await until(() => connections.length > handedOut, 'a secure connection to the node:tls server')
      return connections[handedOut++]
    },
  }
}

// --- configuration --------------------------------------------------------------------------------

const keyCertForms: Array<[string, () => object]> = [
  ['PEM strings', () => ({ key: fixture('server.key').toString(), cert: fixture('server.pem').toString() })],
  ['Buffers', () => ({ key: fixture('server.key'), cert: fixture('server.pem') })],
  ['keyFileName / certFileName', () => ({ keyFileName: fixturePath('server.key'), certFileName: fixturePath('server.pem') })],
  ['an encrypted PKCS#8 key with the right passphrase', () => ({ key: fixture('server.enc.key'), passphrase: 'usockets-test', cert: fixture('server.pem') })],
  ['an RSA key (server-rsa)', () => ({ key: fixture('server-rsa.key'), cert: fixture('server-rsa.pem') })],
  ['a chain (leaf + intermediate, server-chain)', () => ({ key: fixture('server-chain.key'), cert: fixture('server-chain.pem') })],
]

for (const [form, options] of keyCertForms) {
  test(`config: key and cert as ${form}: isTls; a node:tls client trusting ca.pem verifies the server and gets its echo`, async (t) => {
    const server = tlsServer(t, options())
    t.true(server.ctx.isTls)
    const payload = Buffer.from(`hello over TLS with ${form}`)
    const back = await nodeTlsRequest(server.port, { ca: CA, servername: 'localhost' }, payload, payload.length)
    t.is(back.toString(), payload.toString())
    await server.tracker.wait('close')
    server.tracker.assertLifecycle(t)
    t.is(server.tracker.count('open'), 1)
  })
}

test('config: a server whose cert holds only the leaf of server-chain.pem fails verification (unknown issuer): the chain is sent only when given', async (t) => {
  const leafOnly = fixture('server-chain.pem').toString().match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n/)![0]
  const server = tlsServer(t, { key: fixture('server-chain.key'), cert: leafOnly })
  const client = tlsClient(t, server.loop, { ca: CA })
  const socket = client.ctx.connect('127.0.0.1', server.port)
  await expectConnectError(t, client.tracker, socket, 'ERR_TLS_CERT_UNKNOWN_ISSUER')
})

const configErrors: Array<[string, () => object, string, RegExp]> = [
  ['a key that does not match the cert', () => ({ key: fixture('other.key'), cert: fixture('server.pem') }), 'ERR_TLS_KEY_MISMATCH', /\bkey\b/],
  ['bad.pem (not DER) as cert', () => ({ key: fixture('server.key'), cert: fixture('bad.pem') }), 'ERR_TLS_INVALID_CERT', /\bcert\b/],
  ['an encrypted key without passphrase', () => ({ key: fixture('server.enc.key'), cert: fixture('server.pem') }), 'ERR_TLS_PASSPHRASE_REQUIRED', /\bpassphrase\b/],
  ['an encrypted key with a wrong passphrase', () => ({ key: fixture('server.enc.key'), passphrase: 'wrong', cert: fixture('server.pem') }), 'ERR_TLS_BAD_PASSPHRASE', /\bpassphrase\b/],
  ['a missing keyFileName', () => ({ keyFileName: '/nonexistent/usockets-test.key', cert: fixture('server.pem') }), 'ENOENT', /\bkeyFileName\b/],
  ['a missing certFileName', () => ({ key: fixture('server.key'), certFileName: '/nonexistent/usockets-test.pem' }), 'ENOENT', /\bcertFileName\b/],
  ['a key without cert', () => ({ key: fixture('server.key') }), 'ERR_TLS_NO_CERTIFICATE', /\bcert\b/],
  ['a cert without key', () => ({ cert: fixture('server.pem') }), 'ERR_TLS_NO_KEY', /\bkey\b/],
  ['both key and keyFileName', () => ({ key: fixture('server.key'), keyFileName: fixturePath('server.key'), cert: fixture('server.pem') }), 'ERR_INVALID_ARG_VALUE', /\bkeyFileName\b/],
  ['bad.pem as ca', () => ({ ...SERVER, ca: fixture('bad.pem') }), 'ERR_TLS_INVALID_CA', /\bca\b/],
  ['bad.pem as the ca of a client-only context', () => ({ ca: fixture('bad.pem') }), 'ERR_TLS_INVALID_CA', /\bca\b/],
  ['text that is not PEM as ca', () => ({ ca: 'not a certificate' }), 'ERR_TLS_INVALID_CA', /\bca\b/],
  ['a key that is not PEM', () => ({ key: 'not a key', cert: fixture('server.pem') }), 'ERR_TLS_INVALID_KEY', /\bkey\b/],
]

for (const [what, options, code, mentions] of configErrors) {
  test(`config: ${what} throws an Error with code ${code} naming the option`, (t) => {
    const { loop } = newContext(t)
    const err: any = t.throws(() => new SocketContext(loop, { tls: options() }))
    t.true(err instanceof Error)
    t.is(err?.code, code, err?.message)
    t.regex(err?.message ?? '', mentions)
  })
}

test('config: wrong option types throw TypeError ERR_INVALID_ARG_TYPE naming the option', (t) => {
  const { loop } = newContext(t)
  // Wrong types on purpose: this view of the class takes any arguments.
  const LooseSocketContext = looseClass(SocketContext)
  typeError(t, () => new LooseSocketContext(loop, { tls: 'yes' }), 'options.tls')
  typeError(t, () => new LooseSocketContext(loop, { tls: 42 }), 'options.tls')
  typeError(t, () => new LooseSocketContext(loop, { tls: { key: 42, cert: fixture('server.pem') } }), 'options.tls.key')
  typeError(t, () => new LooseSocketContext(loop, { tls: { ...SERVER, cert: true } }), 'options.tls.cert')
  typeError(t, () => new LooseSocketContext(loop, { tls: { ...SERVER, ca: 7 } }), 'options.tls.ca')
  typeError(t, () => new LooseSocketContext(loop, { tls: { ...SERVER, passphrase: 1 } }), 'options.tls.passphrase')
  typeError(t, () => new LooseSocketContext(loop, { tls: { ...SERVER, keyFileName: 1 } }), 'options.tls.keyFileName')
  typeError(t, () => new LooseSocketContext(loop, { tls: { ...SERVER, rejectUnauthorized: 'no' } }), 'options.tls.rejectUnauthorized')
  typeError(t, () => new LooseSocketContext(loop, { tls: { ...SERVER, servername: 5 } }), 'options.tls.servername')
  typeError(t, () => new LooseSocketContext(loop, { tls: { ...SERVER, alpnProtocols: 'h2' } }), 'options.tls.alpnProtocols')
  typeError(t, () => new LooseSocketContext(loop, { tls: { ...SERVER, alpnProtocols: ['h2', 2] } }), 'options.tls.alpnProtocols[1]')
})

test("config: minVersion 'TLSv1.1' throws TypeError ERR_TLS_INVALID_PROTOCOL_VERSION; 'TLSv1.2' and 'TLSv1.3' are accepted", (t) => {
  const { loop } = newContext(t)
  const err: any = t.throws(() => new (looseClass(SocketContext))(loop, { tls: { ...SERVER, minVersion: 'TLSv1.1' } }), { instanceOf: TypeError })
  t.is(err?.code, 'ERR_TLS_INVALID_PROTOCOL_VERSION')
  t.regex(err?.message ?? '', /minVersion/)
  for (const minVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
    const ctx = new SocketContext(loop, { tls: { ...SERVER, minVersion } })
    t.true(ctx.isTls)
    ctx.close()
  }
})

test('config: dhParamsFileName, sslCiphers and preferLowMemoryUsage are accepted (and ignored): the server still serves', async (t) => {
  const server = tlsServer(t, { ...SERVER, dhParamsFileName: '/nonexistent/dhparams.pem', sslCiphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', preferLowMemoryUsage: true })
  t.true(server.ctx.isTls)
  const back = await nodeTlsRequest(server.port, { ca: CA }, Buffer.from('ignored options'), 15)
  t.is(back.toString(), 'ignored options')
})

test('config: a client-only TLS context (no key / cert) connects, but listen() and listenUnix() throw ERR_TLS_NO_CERTIFICATE', async (t) => {
  const server = tlsServer(t)
  const client = tlsClient(t, server.loop, { ca: CA })
  t.true(client.ctx.isTls)
  const err: any = t.throws(() => client.ctx.listen('127.0.0.1', 0))
  t.is(err?.code, 'ERR_TLS_NO_CERTIFICATE')
  const unixErr: any = t.throws(() => client.ctx.listenUnix(tmpSocketPath(t)))
  t.is(unixErr?.code, 'ERR_TLS_NO_CERTIFICATE')
  const socket = client.ctx.connect('127.0.0.1', server.port)
  t.is((await settled(client.tracker, socket)).event, 'open')
})

test('config: a plain context is not TLS: isTls false on it, its children and its sockets', async (t) => {
  const { ctx, loop } = newContext(t)
  t.false(ctx.isTls)
  t.false(ctx.createChild().isTls)
  const tracker = new Tracker(ctx)
  const listener = ctx.listen('127.0.0.1', 0)
  const client = new SocketContext(loop)
  t.teardown(() => client.close())
  const socket = client.connect('127.0.0.1', listener.port)
  t.false(socket.isTls)
  const accepted = (await tracker.wait('open')).socket
  t.false(accepted.isTls)
  t.is(accepted.alpnProtocol, undefined)
  t.is(accepted.servername, undefined)
  t.is(accepted.peerCertificate, undefined)
})

test('createChild(): TLS with the same configuration; one child listens and another connects with it; only the children handlers run', async (t) => {
  // No ca here: on a server, ca means "require client certificates issued by it", and the
  // client side of this very configuration would present server.pem (serverAuth only) as its
  // client certificate. So the client side does not verify either: rejectUnauthorized false.
  const { loop, ctx } = newContext(t, { tls: { ...SERVER, rejectUnauthorized: false } })
  const parent = new Tracker(ctx)
  const serverChild = ctx.createChild()
  const clientChild = ctx.createChild()
  t.true(serverChild.isTls)
  t.true(clientChild.isTls)
  t.is(serverChild.loop, loop)
  const server = new Tracker(serverChild, ECHO)
  const client = new Tracker(clientChild, {
    open(socket) {
      socket.write('child to child')
    },
  })
  const listener = serverChild.listen('127.0.0.1', 0)
  const socket = clientChild.connect('localhost', listener.port)
  const open = await settled(client, socket)
  t.is(open.event, 'open', `connect failed: ${open.args[1]?.code}`)
  isCertificate(t, socket.peerCertificate, 'server.pem', "the client's peerCertificate")
  await until(() => client.received(socket).length >= 14, 'the echo')
  t.is(client.received(socket).toString(), 'child to child')
  const accepted = (await server.wait('open')).socket
  t.is(accepted.context, serverChild)
  t.true(accepted.isTls)
  t.is(accepted.servername, 'localhost')
  socket.close()
  await server.wait('close')
  t.deepEqual(parent.log, [])
  server.assertLifecycle(t)
  client.assertLifecycle(t)
})

// --- server side ----------------------------------------------------------------------------------

test('server: onOpen(socket, false, remoteAddress) only after the handshake; a write in onOpen reaches a node:tls client; onData gets plaintext; TLS details', async (t) => {
  const views: Array<Record<string, unknown>> = []
  const server = tlsServer(t, SERVER, {
    open(socket, isClient, remoteAddress) {
      views.push({
        isClient,
        remoteAddress,
        isEstablished: socket.isEstablished,
        isTls: socket.isTls,
        alpnProtocol: socket.alpnProtocol,
        servername: socket.servername,
        peerCertificate: socket.peerCertificate,
      })
      t.is(socket.write('hello from the server'), 21)
    },
    data(socket, data) {
      socket.write(`got:${data.toString()}`)
    },
  })
  // A TCP connection that never starts a handshake is never shown to JS.
  const idle = await nodeConnect(t, server.port)
  await sleep(200)
  t.deepEqual(server.tracker.log, [], 'a connection without handshake got events')

  const client = await nodeTlsConnect(t, server.port, { servername: 'localhost' })
  const received = collect(client)
  await until(() => received.length() >= 21, 'the greeting')
  t.is(received.bytes().toString(), 'hello from the server')
  client.write('ping')
  await until(() => received.length() >= 21 + 8, 'the reply')
  t.is(received.bytes().toString(), 'hello from the servergot:ping')
  const socket = server.tracker.first('open')!.socket
  t.is(server.tracker.received(socket).toString(), 'ping')
  t.deepEqual(views, [
    { isClient: false, remoteAddress: '127.0.0.1', isEstablished: true, isTls: true, alpnProtocol: undefined, servername: 'localhost', peerCertificate: undefined },
  ])
  t.is(socket.remotePort, client.localPort!)
  t.is(socket.localPort, server.port)
  t.true(socket.fd >= 0)
  // Still only the TLS connection was shown to JS.
  t.is(server.tracker.sockets().length, 1)
  idle.destroy()
  client.end()
  await server.tracker.wait('close')
  server.tracker.assertLifecycle(t)
})

test('server: a node:tls client that connects to 127.0.0.1 sends no SNI: socket.servername is undefined on our side', async (t) => {
  const server = tlsServer(t)
  const client = await nodeTlsConnect(t, server.port)
  const socket = (await server.tracker.wait('open')).socket
  t.is(socket.servername, undefined)
  t.true(client.authorized)
  await roundTrip(client, 'no sni')
})

test('server: many concurrent node:tls clients each get their own echo', async (t) => {
  const server = tlsServer(t)
  const results = await Promise.all(
    Array.from({ length: 40 }, async (_, i) => {
      const payload = randomBytes(5000 + i * 1013)
      const back = await nodeTlsRequest(server.port, { ca: CA, servername: 'localhost' }, payload, payload.length, 15_000)
      return sha256(back) === sha256(payload)
    }),
  )
  t.true(results.every(Boolean))
  await until(() => server.tracker.count('close') === 40, 'forty closes')
  server.tracker.assertLifecycle(t)
})

// --- client side ----------------------------------------------------------------------------------

const clientCases: Array<[string, string, string | undefined]> = [
  ['localhost', '127.0.0.1', 'localhost'],
  ['127.0.0.1', '127.0.0.1', undefined],
  ['::1', '::1', undefined],
  ['[::1]', '::1', undefined],
]

for (const [host, listenHost, sni] of clientCases) {
  test(`client: connect('${host}'): isEstablished false until onOpen(socket, true, ...) after the handshake; servername ${sni}; peerCertificate is server.pem`, async (t) => {
    const server = tlsServer(t, SERVER, ECHO, listenHost)
    const opened = deferred<Record<string, unknown>>()
    const client = tlsClient(t, server.loop, { ca: CA }, {
      open(socket, isClient, remoteAddress) {
        opened.resolve({ isClient, remoteAddress, isEstablished: socket.isEstablished, isTls: socket.isTls })
        socket.write('hi')
      },
    })
    const socket = client.ctx.connect(host, server.port)
    t.true(socket instanceof Socket)
    t.true(socket.isTls)
    t.false(socket.isEstablished)
    t.is(socket.write('too early'), 0)
    const outcome = await settled(client.tracker, socket)
    t.is(outcome.event, 'open', `connect failed: ${outcome.args[1]?.code}`)
    const open = await opened.promise
    t.deepEqual(open, { isClient: true, remoteAddress: listenHost, isEstablished: true, isTls: true })
    t.is(socket.servername, sni)
    t.is(socket.alpnProtocol, undefined)
    isCertificate(t, socket.peerCertificate, 'server.pem', "the client's peerCertificate")
    await until(() => client.tracker.received(socket).length >= 2, 'the echo')
    t.is(client.tracker.received(socket).toString(), 'hi')
    const accepted = (await server.tracker.wait('open')).socket
    t.is(accepted.servername, sni, 'the server sees the name the client sent')
    t.is(accepted.peerCertificate, undefined)
    socket.shutdown()
    const close = await client.tracker.wait('close', socket)
    t.deepEqual(close.args, [0, undefined])
    client.tracker.assertLifecycle(t)
    await server.tracker.wait('close')
    server.tracker.assertLifecycle(t)
  })
}

test('client: 8 MiB with send() to a node:tls echo server come back intact (sha256)', async (t) => {
  const echo = await nodeTlsEchoServer(SERVER)
  t.teardown(() => echo.close())
  const { ctx } = newContext(t, { tls: { ca: CA } })
  const payload = randomBytes(8 * MiB)
  const tracker = new Tracker(ctx, {
    open(socket) {
      for (let i = 0; i < payload.length; i += 256 * 1024) socket.send(payload.subarray(i, i + 256 * 1024))
    },
  })
  const socket = ctx.connect('localhost', echo.port)
  await until(() => tracker.received(socket).length >= payload.length, 'the whole echo', 30_000)
  t.is(sha256(tracker.received(socket)), sha256(payload))
  t.deepEqual(echo.errors, [])
  socket.close()
  tracker.assertLifecycle(t)
})

test('client: a node:tls server that sends the chain (server-chain.pem) verifies against ca.pem', async (t) => {
  const echo = await nodeTlsEchoServer({ key: fixture('server-chain.key'), cert: fixture('server-chain.pem') })
  t.teardown(() => echo.close())
  const { ctx } = newContext(t, { tls: { ca: CA } })
  const tracker = new Tracker(ctx)
  const socket = ctx.connect('127.0.0.1', echo.port)
  const outcome = await settled(tracker, socket)
  t.is(outcome.event, 'open', `connect failed: ${outcome.args[1]?.code}`)
  isCertificate(t, socket.peerCertificate, 'server-chain.pem', 'peerCertificate (the leaf)')
  socket.close()
})

test('client: servername option: SNI sent to a node:tls server and verified, also when connecting to an IP address', async (t) => {
  const names: Array<string | false> = []
  const server = tls.createServer({ ...SERVER, SNICallback: (name, cb) => (names.push(name), cb(null, tls.createSecureContext(WILDCARD))) })
  const connections: tls.TLSSocket[] = []
  server.on('secureConnection', (socket) => {
    connections.push(socket)
    socket.on('error', () => {})
    socket.pipe(socket)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of connections) socket.destroy()
        server.close(() => resolve())
      }),
  )
  const port = (server.address() as net.AddressInfo).port
  const { ctx } = newContext(t, { tls: { ca: CA, servername: 'www.example.com' } })
  const tracker = new Tracker(ctx)
  const socket = ctx.connect('127.0.0.1', port)
  const outcome = await settled(tracker, socket)
  t.is(outcome.event, 'open', `connect failed: ${outcome.args[1]?.code}`)
  t.deepEqual(names, ['www.example.com'])
  t.is(socket.servername, 'www.example.com')
  isCertificate(t, socket.peerCertificate, 'wildcard.pem', 'peerCertificate')
  socket.write('via sni')
  await until(() => tracker.received(socket).length >= 7, 'the echo')
  t.is(tracker.received(socket).toString(), 'via sni')
  socket.close()
})

test('client: a TCP connect whose peer hangs up before the handshake ends in onConnectError (ECONNRESET), no onOpen', async (t) => {
  const raw = await rawServer(t, (socket) => socket.end())
  const { ctx } = newContext(t, { tls: { ca: CA } })
  const tracker = new Tracker(ctx)
  const socket = ctx.connect('127.0.0.1', raw.port)
  const outcome = await settled(tracker, socket)
  t.is(outcome.event, 'connectError')
  if (outcome.event !== 'connectError') return
  t.is(outcome.args[1]?.code, 'ECONNRESET')
  t.true(outcome.args[0] > 0)
  await sleep(50)
  t.deepEqual(tracker.events(socket), ['connectError'])
})

test('client: a server answering plaintext ends in onConnectError ERR_TLS_PROTOCOL (negative code)', async (t) => {
  const raw = await rawServer(t, (socket) => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'))
  const { ctx } = newContext(t, { tls: { ca: CA } })
  const tracker = new Tracker(ctx)
  const socket = ctx.connect('127.0.0.1', raw.port)
  await expectConnectError(t, tracker, socket, 'ERR_TLS_PROTOCOL')
})

test('client: a timeout on a socket whose handshake never completes ends in onConnectError ETIMEDOUT', async (t) => {
  const silent = await rawServer(t)
  const { ctx } = newContext(t, { tls: { ca: CA } })
  const tracker = new Tracker(ctx)
  const start = performance.now()
  const socket = ctx.connect('127.0.0.1', silent.port)
  socket.timeout(1)
  const outcome = await settled(tracker, socket, 10_000)
  const elapsed = performance.now() - start
  t.is(outcome.event, 'connectError')
  if (outcome.event !== 'connectError') return
  t.is(outcome.args[1]?.code, 'ETIMEDOUT')
  t.true(elapsed >= 900 && elapsed < 6500, `after ${Math.round(elapsed)} ms`)
  t.false(socket.isEstablished)
})

test('client: context.close() during the handshake ends the connect in onConnectError ECANCELED before close() returns', async (t) => {
  const silent = await rawServer(t)
  const { ctx } = newContext(t, { tls: { ca: CA } })
  const tracker = new Tracker(ctx)
  const socket = ctx.connect('127.0.0.1', silent.port)
  await until(() => silent.connections.length === 1, 'the TCP connection')
  await sleep(50)
  t.deepEqual(tracker.events(socket), [])
  ctx.close()
  t.deepEqual(tracker.events(socket), ['connectError'])
  t.is(tracker.first('connectError')!.args[1]?.code, 'ECANCELED')
})

// --- verification ---------------------------------------------------------------------------------

const verifyFailures: Array<[string, object, object, string, string, string]> = [
  ['without ca (the bundled Mozilla roots do not know the test root)', SERVER, {}, '127.0.0.1', '127.0.0.1', 'ERR_TLS_CERT_UNKNOWN_ISSUER'],
  ['an expired certificate (expired.pem)', { key: fixture('expired.key'), cert: fixture('expired.pem') }, { ca: CA }, '127.0.0.1', '127.0.0.1', 'ERR_TLS_CERT_EXPIRED'],
  ["servername 'wrong.test' (server.pem is for localhost)", SERVER, { ca: CA, servername: 'wrong.test' }, '127.0.0.1', '127.0.0.1', 'ERR_TLS_CERT_ALTNAME_INVALID'],
  ['an IP address not in the certificate (127.0.0.2)', SERVER, { ca: CA }, '127.0.0.2', '127.0.0.2', 'ERR_TLS_CERT_ALTNAME_INVALID'],
  ['a self-signed certificate', { key: fixture('self-signed.key'), cert: fixture('self-signed.pem') }, { ca: CA }, '127.0.0.1', '127.0.0.1', 'ERR_TLS_CERT_UNKNOWN_ISSUER'],
  ['a server certificate issued by another root (ca is client-ca.pem)', SERVER, { ca: fixture('client-ca.pem') }, 'localhost', '127.0.0.1', 'ERR_TLS_CERT_UNKNOWN_ISSUER'],
]

for (const [what, serverTls, clientTls, host, listenHost, code] of verifyFailures) {
  test(`verification: ${what}: onConnectError(socket, negative code, ${code}); the server never sees that socket`, async (t) => {
    const server = tlsServer(t, serverTls, ECHO, listenHost)
    const client = tlsClient(t, server.loop, clientTls)
    const socket = client.ctx.connect(host, server.port)
    await expectConnectError(t, client.tracker, socket, code)
    // The server is still serving: a client that does not verify gets through (its open is the
    // server's first and only event: the failed handshake was never shown to JS).
    const lenient = tlsClient(t, server.loop, { rejectUnauthorized: false })
    const good = lenient.ctx.connect(listenHost, server.port)
    t.is((await settled(lenient.tracker, good)).event, 'open')
    await server.tracker.wait('open')
    await sleep(100)
    t.is(server.tracker.sockets().length, 1, `server events: ${server.tracker.log.map((e) => e.event).join(',')}`)
    t.deepEqual(server.tracker.events(server.tracker.sockets()[0]), ['open'])
  })
}

test('verification: rejectUnauthorized false accepts a self-signed and an expired certificate (peerCertificate is theirs)', async (t) => {
  for (const name of ['self-signed', 'expired']) {
    const server = tlsServer(t, { key: fixture(`${name}.key`), cert: fixture(`${name}.pem`) })
    const client = tlsClient(t, server.loop, { rejectUnauthorized: false })
    const socket = client.ctx.connect('127.0.0.1', server.port)
    const outcome = await settled(client.tracker, socket)
    t.is(outcome.event, 'open', `${name}: ${outcome.args[1]?.code}`)
    isCertificate(t, socket.peerCertificate, `${name}.pem`, `${name}: peerCertificate`)
    socket.write(name)
    await until(() => client.tracker.received(socket).length >= name.length, 'the echo')
    t.is(client.tracker.received(socket).toString(), name)
    socket.close()
  }
})

test('verification: a self-signed certificate trusted as ca verifies', async (t) => {
  const server = tlsServer(t, { key: fixture('self-signed.key'), cert: fixture('self-signed.pem') })
  const client = tlsClient(t, server.loop, { ca: fixture('self-signed.pem') })
  const socket = client.ctx.connect('localhost', server.port)
  t.is((await settled(client.tracker, socket)).event, 'open')
})

test('verification: caFileName works like ca', async (t) => {
  const server = tlsServer(t)
  const client = tlsClient(t, server.loop, { caFileName: fixturePath('ca.pem') })
  const socket = client.ctx.connect('127.0.0.1', server.port)
  t.is((await settled(client.tracker, socket)).event, 'open')
})

test('verification: a node:tls client that does not trust the server fails; our server never sees it', async (t) => {
  const server = tlsServer(t)
  const err: any = await t.throwsAsync(nodeTlsConnect(t, server.port, { ca: fixture('client-ca.pem') }))
  t.is(err?.code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE')
  await roundTrip(await nodeTlsConnect(t, server.port), 'still serving')
  t.is(server.tracker.sockets().length, 1)
})

// --- mutual TLS -----------------------------------------------------------------------------------

test('mutual TLS: with ca (client-ca.pem) the server requires a client certificate; with one, both sides see the peer certificate', async (t) => {
  const server = tlsServer(t, { ...SERVER, ca: fixture('client-ca.pem') })
  const client = tlsClient(t, server.loop, { ...CLIENT_CERT, ca: CA })
  const socket = client.ctx.connect('localhost', server.port)
  const outcome = await settled(client.tracker, socket)
  t.is(outcome.event, 'open', `connect failed: ${outcome.args[1]?.code}`)
  isCertificate(t, socket.peerCertificate, 'server.pem', "the client's peerCertificate")
  const accepted = (await server.tracker.wait('open')).socket
  isCertificate(t, accepted.peerCertificate, 'client.pem', "the server's peerCertificate")
  socket.write('mutual')
  await until(() => client.tracker.received(socket).length >= 6, 'the echo')
  t.is(client.tracker.received(socket).toString(), 'mutual')
  socket.shutdown()
  await server.tracker.wait('close')
  await client.tracker.wait('close')
  server.tracker.assertLifecycle(t)
  client.tracker.assertLifecycle(t)
})

test('mutual TLS: a node:tls client with client.pem is accepted; one without a certificate is rejected (node sees an error)', async (t) => {
  const server = tlsServer(t, { ...SERVER, ca: fixture('client-ca.pem') })
  const back = await nodeTlsRequest(server.port, { ca: CA, ...CLIENT_CERT }, Buffer.from('with cert'), 9)
  t.is(back.toString(), 'with cert')
  const accepted = (await server.tracker.wait('open')).socket
  isCertificate(t, accepted.peerCertificate, 'client.pem', "the server's peerCertificate")
  // TLS 1.3: node's handshake completes before the server checks the (missing) certificate: the
  // rejection shows as an error when reading.
  const err: any = await t.throwsAsync(nodeTlsRequest(server.port, { ca: CA }, Buffer.from('no cert'), 1))
  t.is(err?.code, 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', err?.message)
  // TLS 1.2: the handshake itself fails (with an alert from our server).
  const err12: any = await t.throwsAsync(nodeTlsConnect(t, server.port, { maxVersion: 'TLSv1.2' }))
  t.regex(String(err12?.code), /^ERR_SSL_.*ALERT/, err12?.message)
  await sleep(100)
  t.is(server.tracker.count('open'), 1, 'the rejected clients were never shown to JS')
})

test('mutual TLS: our client without a certificate (TLS 1.3) gets onOpen, then onClose with ERR_TLS_ALERT_CERTIFICATE_REQUIRED; the server sees nothing', async (t) => {
  // In TLS 1.3 the client's handshake is complete once it sent its (empty) Certificate and its
  // Finished: the server's verdict arrives afterwards as an alert, so our client has opened by
  // then and the failure is its onClose (node:tls behaves the same: 'secureConnect', then an error).
  const server = tlsServer(t, { ...SERVER, ca: fixture('client-ca.pem') })
  const client = tlsClient(t, server.loop, { ca: CA })
  const socket = client.ctx.connect('localhost', server.port)
  const close = await client.tracker.wait('close', socket)
  t.deepEqual(client.tracker.events(socket), ['open', 'close'])
  const [code, err] = close.args
  t.is(err?.code, 'ERR_TLS_ALERT_CERTIFICATE_REQUIRED', err?.message)
  t.true(code < 0)
  t.is(err?.errno, code)
  await sleep(100)
  t.deepEqual(server.tracker.log, [])
})

test('mutual TLS: our client with a certificate from an untrusted issuer is rejected with ERR_TLS_ALERT_UNKNOWN_CA', async (t) => {
  const server = tlsServer(t, { ...SERVER, ca: fixture('client-ca.pem') })
  const client = tlsClient(t, server.loop, { key: fixture('client-untrusted.key'), cert: fixture('client-untrusted.pem'), ca: CA })
  const socket = client.ctx.connect('localhost', server.port)
  const close = await client.tracker.wait('close', socket)
  t.deepEqual(client.tracker.events(socket), ['open', 'close'])
  t.is(close.args[1]?.code, 'ERR_TLS_ALERT_UNKNOWN_CA', close.args[1]?.message)
  t.true(close.args[0] < 0)
  await sleep(100)
  t.deepEqual(server.tracker.log, [])
})

test('mutual TLS: requestCert true asks without requiring: a client without a certificate gets in (peerCertificate undefined), one with gets verified', async (t) => {
  const server = tlsServer(t, { ...SERVER, ca: fixture('client-ca.pem'), requestCert: true })
  const anonymous = tlsClient(t, server.loop, { ca: CA })
  const a = anonymous.ctx.connect('localhost', server.port)
  t.is((await settled(anonymous.tracker, a)).event, 'open')
  a.write('anonymous')
  await until(() => anonymous.tracker.received(a).length >= 9, 'the echo')
  t.is(anonymous.tracker.received(a).toString(), 'anonymous')
  const first = (await server.tracker.wait('open', undefined, 5000, 0)).socket
  t.is(first.peerCertificate, undefined)

  const named = tlsClient(t, server.loop, { ...CLIENT_CERT, ca: CA })
  const b = named.ctx.connect('localhost', server.port)
  t.is((await settled(named.tracker, b)).event, 'open')
  const second = (await server.tracker.wait('open', undefined, 5000, 1)).socket
  isCertificate(t, second.peerCertificate, 'client.pem', "the server's peerCertificate")
  // A node:tls client without a certificate gets in too.
  const back = await nodeTlsRequest(server.port, { ca: CA }, Buffer.from('node anonymous'), 14)
  t.is(back.toString(), 'node anonymous')
})

// --- ALPN -----------------------------------------------------------------------------------------

test("ALPN: both sides ['h2', 'http/1.1'] negotiate 'h2'; alpnProtocol is undefined when either side offers none", async (t) => {
  const server = tlsServer(t, { ...SERVER, alpnProtocols: ['h2', 'http/1.1'] })
  const both = tlsClient(t, server.loop, { ca: CA, alpnProtocols: ['h2', 'http/1.1'] })
  const a = both.ctx.connect('localhost', server.port)
  t.is((await settled(both.tracker, a)).event, 'open')
  t.is(a.alpnProtocol, 'h2')
  t.is((await server.tracker.wait('open', undefined, 5000, 0)).socket.alpnProtocol, 'h2')

  const none = tlsClient(t, server.loop, { ca: CA })
  const b = none.ctx.connect('localhost', server.port)
  t.is((await settled(none.tracker, b)).event, 'open')
  t.is(b.alpnProtocol, undefined)
  t.is((await server.tracker.wait('open', undefined, 5000, 1)).socket.alpnProtocol, undefined)

  const plainServer = tlsServer(t)
  const c = both.ctx.connect('localhost', plainServer.port)
  t.is((await settled(both.tracker, c)).event, 'open')
  t.is(c.alpnProtocol, undefined)
  t.is((await plainServer.tracker.wait('open')).socket.alpnProtocol, undefined)
})

test("ALPN: a node:tls client offering ['http/1.1'] gets 'http/1.1' (both sides agree); one offering only 'spdy/1' is refused", async (t) => {
  const server = tlsServer(t, { ...SERVER, alpnProtocols: ['h2', 'http/1.1'] })
  const client = await nodeTlsConnect(t, server.port, { ALPNProtocols: ['http/1.1'] })
  t.is(client.alpnProtocol, 'http/1.1')
  t.is((await server.tracker.wait('open')).socket.alpnProtocol, 'http/1.1')
  const err: any = await t.throwsAsync(nodeTlsConnect(t, server.port, { ALPNProtocols: ['spdy/1'] }))
  t.is(err?.code, 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL', err?.message)
  await sleep(100)
  t.is(server.tracker.count('open'), 1)
})

test("ALPN: our client against a node:tls server with ALPNProtocols ['http/1.1', 'h2'] (the server's preference wins)", async (t) => {
  const echo = await nodeTlsEchoServer({ ...SERVER, ALPNProtocols: ['http/1.1', 'h2'] })
  t.teardown(() => echo.close())
  const { ctx } = newContext(t, { tls: { ca: CA, alpnProtocols: ['h2', 'http/1.1'] } })
  const tracker = new Tracker(ctx)
  const socket = ctx.connect('localhost', echo.port)
  t.is((await settled(tracker, socket)).event, 'open')
  t.is(socket.alpnProtocol, 'http/1.1')
  await until(() => echo.connections.length === 1, 'the node side')
  t.is(echo.connections[0].alpnProtocol, 'http/1.1')
  socket.close()
})

// --- SNI ------------------------------------------------------------------------------------------

test('SNI: addServerName(*.example.com): www.example.com gets the wildcard certificate; findServerNameExt; other names get the default; removeServerName', async (t) => {
  const server = tlsServer(t)
  const ext = { name: 'wildcard entry' }
  server.ctx.addServerName('*.example.com', WILDCARD, ext)
  t.is(server.ctx.findServerNameExt('www.example.com'), ext)
  t.is(server.ctx.findServerNameExt('*.example.com'), ext)
  t.is(server.ctx.findServerNameExt('a.b.example.com'), undefined)
  t.is(server.ctx.findServerNameExt('localhost'), undefined)
  t.is(server.ctx.findServerNameExt('other.test'), undefined)

  const www = tlsClient(t, server.loop, { ca: CA, servername: 'www.example.com' })
  const a = www.ctx.connect('127.0.0.1', server.port)
  const outcome = await settled(www.tracker, a)
  t.is(outcome.event, 'open', `connect failed: ${outcome.args[1]?.code}`)
  isCertificate(t, a.peerCertificate, 'wildcard.pem', 'www.example.com: peerCertificate')
  t.is(a.servername, 'www.example.com')
  const accepted = (await server.tracker.wait('open')).socket
  t.is(accepted.servername, 'www.example.com')

  // localhost matches no pattern: the default certificate.
  const local = tlsClient(t, server.loop, { ca: CA })
  const b = local.ctx.connect('localhost', server.port)
  t.is((await settled(local.tracker, b)).event, 'open')
  isCertificate(t, b.peerCertificate, 'server.pem', 'localhost: peerCertificate')

  // *.example.com matches one label only: a.b.example.com gets the default, which does not fit.
  const deep = tlsClient(t, server.loop, { ca: CA, servername: 'a.b.example.com' })
  await expectConnectError(t, deep.tracker, deep.ctx.connect('127.0.0.1', server.port), 'ERR_TLS_CERT_ALTNAME_INVALID')

  server.ctx.removeServerName('*.example.com')
  t.is(server.ctx.findServerNameExt('www.example.com'), undefined)
  t.is(server.ctx.findServerNameExt('*.example.com'), undefined)
  // A client that has no session to resume (www's would resume: a removed name does not void
  // the sessions it issued) now gets the default certificate, which does not fit.
  const fresh = tlsClient(t, server.loop, { ca: CA, servername: 'www.example.com' })
  await expectConnectError(t, fresh.tracker, fresh.ctx.connect('127.0.0.1', server.port), 'ERR_TLS_CERT_ALTNAME_INVALID')
  // The socket that opened with the wildcard certificate is unaffected.
  a.write('still here')
  await until(() => www.tracker.received(a).length >= 10, 'the echo')
  t.is(www.tracker.received(a).toString(), 'still here')
})

test('SNI: several names (an exact name and a wildcard) each serve their own certificate; children share them; a node:tls client verifies them', async (t) => {
  const server = tlsServer(t)
  const child = server.ctx.createChild()
  server.ctx.addServerName('*.example.com', WILDCARD, 'wild')
  child.addServerName('other.test', OTHER, 'other')
  t.is(server.ctx.findServerNameExt('other.test'), 'other')
  t.is(child.findServerNameExt('www.example.com'), 'wild')
  for (const [servername, cert] of [
    ['other.test', 'other.pem'],
    ['api.example.com', 'wildcard.pem'],
    ['localhost', 'server.pem'],
  ]) {
    const client = await nodeTlsConnect(t, server.port, { servername })
    t.true(client.authorized, `${servername}: ${client.authorizationError}`)
    // Node 20 hands out the peer's X509Certificate once (a second call returns undefined).
    const peer = client.getPeerX509Certificate()
    t.true(peer !== undefined && peer.raw.equals(der(cert)), `${servername}: got ${peer?.subject}`)
    await roundTrip(client, servername)
  }
  const servernames = server.tracker.log.filter((e) => e.event === 'open').map((e) => e.socket.servername)
  t.deepEqual(servernames, ['other.test', 'api.example.com', 'localhost'])
})

test('SNI: onServerName(context, hostname) runs for names no pattern matches; adding that name there serves it to the waiting handshake', async (t) => {
  const server = tlsServer(t)
  const asked: Array<[SocketContext, string]> = []
  server.ctx.onServerName((context: SocketContext, hostname: string) => {
    asked.push([context, hostname])
    if (hostname === 'other.test') context.addServerName('other.test', OTHER, { added: hostname })
  })
  const other = tlsClient(t, server.loop, { ca: CA, servername: 'other.test' })
  const a = other.ctx.connect('127.0.0.1', server.port)
  const outcome = await settled(other.tracker, a)
  t.is(outcome.event, 'open', `connect failed: ${outcome.args[1]?.code}`)
  isCertificate(t, a.peerCertificate, 'other.pem', 'other.test: peerCertificate')
  t.deepEqual(asked, [[server.ctx, 'other.test']])
  t.deepEqual(server.ctx.findServerNameExt('other.test'), { added: 'other.test' })
  t.is((await server.tracker.wait('open')).socket.servername, 'other.test')

  // Now the pattern exists: no second question.
  const again = other.ctx.connect('127.0.0.1', server.port)
  t.is((await settled(other.tracker, again)).event, 'open')
  t.is(asked.length, 1)

  // A name the handler leaves alone: the default certificate.
  const local = tlsClient(t, server.loop, { ca: CA })
  const b = local.ctx.connect('localhost', server.port)
  t.is((await settled(local.tracker, b)).event, 'open')
  isCertificate(t, b.peerCertificate, 'server.pem', 'localhost: peerCertificate')
  t.deepEqual(
    asked.map(([, name]) => name),
    ['other.test', 'localhost'],
  )

  // No SNI at all (an IP address): nothing to ask about.
  const ip = local.ctx.connect('127.0.0.1', server.port)
  t.is((await settled(local.tracker, ip)).event, 'open')
  t.is(asked.length, 2)
})

test('SNI: a throwing onServerName is reported as uncaughtException and the handshake goes on with the default certificate (child process)', async (t) => {
  const run = await runNode(
    `const fs = require('node:fs')
     const { Loop, SocketContext } = usockets
     const read = (name) => fs.readFileSync(${JSON.stringify(fixturePath('ca.pem'))}.replace('ca.pem', name))
     const uncaught = []
     process.on('uncaughtException', (err) => uncaught.push(err.message))
     const loop = new Loop()
     const server = new SocketContext(loop, { tls: { key: read('server.key'), cert: read('server.pem') } })
     const asked = []
     server.onServerName((context, name) => { asked.push(name); throw new Error('boom from onServerName ' + name) })
     server.onData((socket, data) => socket.write(data))
     const listener = server.listen('127.0.0.1', 0)
     const client = new SocketContext(loop, { tls: { ca: read('ca.pem') } })
     const result = { asked, uncaught }
     const done = () => {
       loop.close()
       result.uncaught = uncaught
       console.log(JSON.stringify(result))
     }
     client.onOpen((socket) => {
       result.opened = true
       result.peerIsServerPem = socket.peerCertificate.equals(new (require('node:crypto').X509Certificate)(read('server.pem')).raw)
       socket.write('after the throw')
     })
     client.onData((socket, data) => { result.echo = data.toString(); setTimeout(done, 50) })
     client.onConnectError((socket, code, err) => { result.connectError = err.code; setTimeout(done, 50) })
     client.connect('localhost', listener.port)
     setTimeout(() => { result.timedOut = true; done() }, 5000).unref()`,
    10_000,
  )
  t.false(run.timedOut, `hung: ${run.stdout} ${run.stderr}`)
  t.is(run.code, 0, run.stderr)
  const report = jsonSummary(t, run)
  t.deepEqual(report, {
    asked: ['localhost'],
    uncaught: ['boom from onServerName localhost'],
    opened: true,
    peerIsServerPem: true,
    echo: 'after the throw',
  })
})

test('SNI: addServerName / removeServerName on a plain context throw ERR_TLS_REQUIRED; findServerNameExt finds nothing', (t) => {
  const { ctx } = newContext(t)
  const err: any = t.throws(() => ctx.addServerName('*.example.com', WILDCARD, 1))
  t.is(err?.code, 'ERR_TLS_REQUIRED')
  const removeErr: any = t.throws(() => ctx.removeServerName('*.example.com'))
  t.is(removeErr?.code, 'ERR_TLS_REQUIRED')
  t.is(ctx.findServerNameExt('www.example.com'), undefined)
})

test('SNI: addServerName with bad options throws the configuration error and adds nothing', (t) => {
  const { ctx } = newContext(t, { tls: SERVER })
  const mismatch: any = t.throws(() => ctx.addServerName('*.example.com', { key: fixture('other.key'), cert: fixture('wildcard.pem') }, 'ext'))
  t.is(mismatch?.code, 'ERR_TLS_KEY_MISMATCH')
  const noCert: any = t.throws(() => ctx.addServerName('*.example.com', { key: fixture('wildcard.key') }, 'ext'))
  t.is(noCert?.code, 'ERR_TLS_NO_CERTIFICATE')
  const badCert: any = t.throws(() => ctx.addServerName('*.example.com', { key: fixture('wildcard.key'), cert: fixture('bad.pem') }, 'ext'))
  t.is(badCert?.code, 'ERR_TLS_INVALID_CERT')
  typeError(t, () => loose(ctx).addServerName('*.example.com', 'not options', 'ext'), 'tls')
  t.is(ctx.findServerNameExt('www.example.com'), undefined)
  t.is(ctx.findServerNameExt('*.example.com'), undefined)
})

// --- writes ---------------------------------------------------------------------------------------

test('write: takes plaintext up to highWaterMark (partial beyond it); onWritable once drained (bufferedAmount 0); the node:tls peer gets exactly the bytes written', async (t) => {
  const sink = await nodeTlsSink(t)
  const highWaterMark = 16 * 1024
  const payload = randomBytes(1 * MiB)
  let offset = 0
  const takes: number[] = []
  const writableBuffered: number[] = []
  const pump = (socket: Socket) => {
    while (offset < payload.length) {
      const n = socket.write(payload.subarray(offset))
      takes.push(n)
      offset += n
      if (n < payload.length - (offset - n)) return // partial: wait for onWritable
    }
  }
  const { ctx } = newContext(t, { tls: { ca: CA }, highWaterMark })
  const tracker = new Tracker(ctx, {
    open: pump,
    writable(socket) {
      writableBuffered.push(socket.bufferedAmount)
      pump(socket)
    },
  })
  const socket = ctx.connect('localhost', sink.port)
  const peer = await sink.next()
  const received = collect(peer)
  await untilState(
    () => received.length() >= payload.length,
    'the whole payload',
    () => `the peer got ${received.length()} of ${payload.length} bytes; writes took ${takes.join(',')}; onWritable ran ${writableBuffered.length} times; bufferedAmount ${socket.bufferedAmount}`,
    20_000,
  )
  t.is(received.length(), payload.length)
  t.is(sha256(received.bytes()), sha256(payload))
  t.true(takes.length > 1, 'some write was partial')
  t.true(
    takes.every((n) => n >= 0 && n <= highWaterMark),
    `a write took more than highWaterMark: ${takes.filter((n) => n > highWaterMark).slice(0, 5)}`,
  )
  t.is(takes[0], highWaterMark, 'the first write (nothing buffered) takes exactly highWaterMark')
  t.true(writableBuffered.length > 0)
  t.deepEqual(
    writableBuffered.filter((n) => n !== 0),
    [],
    'bufferedAmount is 0 when onWritable runs',
  )
  await sleep(100)
  t.is(received.length(), payload.length, 'nothing more than written arrived')
  socket.close()
  tracker.assertLifecycle(t)
})

test('write: a small write is taken whole; strings as UTF-8; write2 sends header then payload; msgMore + flush()', async (t) => {
  const sink = await nodeTlsSink(t)
  const { ctx } = newContext(t, { tls: { ca: CA } })
  const tracker = new Tracker(ctx)
  const socket = ctx.connect('localhost', sink.port)
  await tracker.wait('open')
  const peer = await sink.next()
  const received = collect(peer)
  t.is(socket.write('héllo '), 7)
  t.is(socket.write(new Uint16Array([0x4241])), 2)
  t.is(socket.write2('[header]', Buffer.from('[payload]')), 17)
  t.is(socket.write2(Buffer.alloc(0), 'x'), 1)
  t.is(socket.write('more', true), 4)
  socket.flush()
  const expected = Buffer.concat([Buffer.from('héllo '), Buffer.from([0x41, 0x42]), Buffer.from('[header][payload]xmore')])
  await until(() => received.length() >= expected.length, 'everything written')
  t.is(received.bytes().toString('hex'), expected.toString('hex'))
  socket.close()
})

test('send() then write(): a write queues behind the sent bytes (below highWaterMark): the peer gets them in order', async (t) => {
  const sink = await nodeTlsSink(t)
  const { ctx } = newContext(t, { tls: { ca: CA } })
  const tracker = new Tracker(ctx)
  const socket = ctx.connect('localhost', sink.port)
  await tracker.wait('open')
  const peer = await sink.next()
  const received = collect(peer)
  const first = randomBytes(20_000)
  t.true(socket.send(first))
  // TLS writes queue plaintext up to highWaterMark (unlike plain TCP, where write returns 0
  // while send() data waits): at most 20 000 bytes are buffered, so all 9 bytes are taken.
  t.is(socket.write('then this'), 9)
  const expected = Buffer.concat([first, Buffer.from('then this')])
  await until(() => received.length() >= expected.length, 'everything')
  t.is(sha256(received.bytes()), sha256(expected))
  socket.close()
})

test('shutdown() right after send() of 100 KiB: close_notify and FIN follow all the data', async (t) => {
  const payload = randomBytes(100 * 1024)
  const server = tlsServer(t, SERVER, {
    open(socket) {
      socket.send(payload)
      socket.shutdown()
    },
  })
  const client = await nodeTlsConnect(t, server.port)
  const received = collect(client)
  await once(client, 'end')
  t.is(sha256(received.bytes()), sha256(payload))
  client.end()
  t.deepEqual((await server.tracker.wait('close')).args, [0, undefined])
})

test('write2 of a header and a 1 MiB payload with highWaterMark 64 KiB: partial; continuing with write after onWritable delivers everything in order', async (t) => {
  const sink = await nodeTlsSink(t)
  const header = Buffer.from('HEADER:')
  const body = randomBytes(1 * MiB)
  const expected = Buffer.concat([header, body])
  let rest: Buffer | undefined
  const { ctx } = newContext(t, { tls: { ca: CA } })
  let first = -1
  const continueWriting = (socket: Socket) => {
    while (rest !== undefined && rest.length > 0) {
      const n = socket.write(rest)
      rest = rest.subarray(n)
      if (rest.length > 0) return
    }
  }
  new Tracker(ctx, {
    open(socket) {
      first = socket.write2(header, body)
      rest = expected.subarray(first)
      continueWriting(socket)
    },
    writable: continueWriting,
  })
  const socket = ctx.connect('localhost', sink.port)
  const peer = await sink.next()
  const received = collect(peer)
  await untilState(
    () => received.length() >= expected.length,
    'header and payload',
    () => `the peer got ${received.length()} of ${expected.length} bytes; write2 took ${first}; bufferedAmount ${socket.bufferedAmount}`,
    20_000,
  )
  t.true(first > header.length && first <= 64 * 1024, `write2 took ${first}`)
  t.is(sha256(received.bytes()), sha256(expected))
})

test('send: takes everything; false once bufferedAmount >= highWaterMark (peer paused); write takes nothing then; onWritable with 0 buffered after the peer resumes; every byte in order', async (t) => {
  const sink = await nodeTlsSink(t)
  const payload = randomBytes(32 * MiB)
  const writable = deferred<number>()
  const { ctx } = newContext(t, { tls: { ca: CA } })
  const tracker = new Tracker(ctx, {
    writable(socket) {
      if (!writable.settled) writable.resolve(socket.bufferedAmount)
    },
  })
  const socket = ctx.connect('localhost', sink.port)
  await tracker.wait('open')
  const peer = await sink.next()
  peer.pause()
  t.false(socket.send(payload))
  t.true(socket.bufferedAmount >= 64 * 1024, `bufferedAmount ${socket.bufferedAmount}`)
  t.true(socket.bufferedAmount <= payload.length * 1.01 + 4096, `bufferedAmount ${socket.bufferedAmount} is more than sent`)
  t.is(socket.write('overtake?'), 0)
  // The peer reads nothing: bytes stay buffered on our side.
  await sleep(300)
  t.true(socket.bufferedAmount > 0, 'bufferedAmount drained although the peer reads nothing')
  t.false(writable.settled, 'onWritable before the buffer drained')
  const received = collect(peer)
  peer.resume()
  await untilState(
    () => writable.settled,
    'onWritable',
    () => `the peer got ${received.length()} of ${payload.length} bytes; bufferedAmount ${socket.bufferedAmount}`,
    20_000,
  )
  t.is(await writable.promise, 0)
  t.is(socket.bufferedAmount, 0)
  await until(() => received.length() >= payload.length, 'the whole payload', 20_000)
  t.is(sha256(received.bytes()), sha256(payload))
  // send still works afterwards, and returns true below highWaterMark.
  t.true(socket.send('tail'))
  await until(() => received.length() >= payload.length + 4, 'the tail')
  t.is(received.bytes().subarray(payload.length).toString(), 'tail')
  socket.close()
  tracker.assertLifecycle(t)
})

test('server: 8 MiB echoed with send() to a node:tls client arrive intact (sha256); the onData chunks hold the plaintext', async (t) => {
  const server = tlsServer(t)
  const payload = randomBytes(8 * MiB)
  const back = await nodeTlsRequest(server.port, { ca: CA, servername: 'localhost' }, payload, payload.length, 30_000).catch((err) => {
    const socket = server.tracker.first('open')?.socket
    throw new Error(`${err.message}; our server received ${socket && server.tracker.received(socket).length}, its bufferedAmount is ${socket?.bufferedAmount}`)
  })
  t.is(back.length, payload.length)
  t.is(sha256(back), sha256(payload))
  const socket = server.tracker.first('open')!.socket
  t.is(sha256(server.tracker.received(socket)), sha256(payload))
  await server.tracker.wait('close')
  server.tracker.assertLifecycle(t)
})

test('server: 8 MiB sent with send() in one direction (server to a node:tls client) arrive intact, then shutdown(): the client sees the end', async (t) => {
  const payload = randomBytes(8 * MiB)
  const server = tlsServer(t, SERVER, {
    open(socket) {
      for (let i = 0; i < payload.length; i += 1 * MiB) socket.send(payload.subarray(i, i + 1 * MiB))
      socket.shutdown()
      t.true(socket.isShutDown)
    },
  })
  const client = await nodeTlsConnect(t, server.port)
  const received = collect(client)
  await untilState(
    () => client.readableEnded,
    'the end',
    () => `the client got ${received.length()} of ${payload.length} bytes; our bufferedAmount is ${server.tracker.first('open')?.socket.bufferedAmount}`,
    30_000,
  )
  t.is(received.length(), payload.length)
  t.is(sha256(received.bytes()), sha256(payload))
  client.end()
  const close = await server.tracker.wait('close')
  t.deepEqual(close.args, [0, undefined])
  server.tracker.assertLifecycle(t)
})

test('pause() / resume() on a TLS socket: no onData while paused; afterwards everything in order', async (t) => {
  const server = tlsServer(t, SERVER, {})
  const client = await nodeTlsConnect(t, server.port)
  const socket = (await server.tracker.wait('open')).socket
  socket.pause()
  const chunks: string[] = []
  for (let i = 0; i < 200; i++) chunks.push(`chunk ${i};`)
  for (const chunk of chunks) client.write(chunk)
  await sleep(300)
  t.is(server.tracker.count('data'), 0)
  socket.resume()
  const total = chunks.join('')
  await until(() => server.tracker.received(socket).length >= total.length, 'all chunks')
  t.is(server.tracker.received(socket).toString(), total)
})

test('a slow JS consumer on a loop with a small maxPendingBytes still gets every plaintext byte of a TLS connection, in order', async (t) => {
  const loop = newLoop(t, { maxPendingBytes: 65536 })
  const ctx = new SocketContext(loop, { tls: SERVER })
  t.teardown(() => ctx.close())
  const tracker = new Tracker(ctx, {
    data() {
      busyWait(1)
    },
  })
  const listener = ctx.listen('127.0.0.1', 0)
  const client = await nodeTlsConnect(t, listener.port)
  const payload = randomBytes(8 * MiB)
  client.end(payload)
  const close = await tracker.wait('close', undefined, 30_000)
  t.deepEqual(close.args, [0, undefined])
  t.is(sha256(tracker.received(close.socket)), sha256(payload))
  tracker.assertLifecycle(t)
})

test('timeout(1) on an open TLS socket fires onTimeout (1 to 1 + TIMEOUT_GRANULARITY s) without closing it', async (t) => {
  const server = tlsServer(t)
  const client = tlsClient(t, server.loop, { ca: CA })
  const socket = client.ctx.connect('localhost', server.port)
  t.is((await settled(client.tracker, socket)).event, 'open')
  const start = performance.now()
  socket.timeout(1)
  await client.tracker.wait('timeout', socket, 8000)
  const elapsed = performance.now() - start
  t.true(elapsed >= 990 && elapsed < 5500, `after ${Math.round(elapsed)} ms`)
  t.true(socket.isEstablished)
  socket.write('alive')
  await until(() => client.tracker.received(socket).length >= 5, 'the echo')
  t.is(client.tracker.received(socket).toString(), 'alive')
})

test('handshake timeout: a TCP client that never sends a ClientHello is dropped by the server after about 10 s, never shown to JS', async (t) => {
  // src/event_loop/sockets.rs TLS_HANDSHAKE_TIMEOUT: 10 s plus up to one 4 s tick.
  const server = tlsServer(t)
  const start = performance.now()
  const idle = await nodeConnect(t, server.port)
  idle.resume()
  await once(idle, 'close', 20_000)
  const elapsed = performance.now() - start
  t.true(elapsed >= 9900 && elapsed < 15_500, `dropped after ${Math.round(elapsed)} ms`)
  t.deepEqual(server.tracker.log, [])
})

test('handshake timeout: our client facing a server that never answers gets onConnectError ERR_TLS_HANDSHAKE_TIMEOUT after about 10 s', async (t) => {
  const silent = await rawServer(t)
  const { ctx } = newContext(t, { tls: { ca: CA } })
  const tracker = new Tracker(ctx)
  const start = performance.now()
  const socket = ctx.connect('127.0.0.1', silent.port)
  const outcome = await settled(tracker, socket, 20_000)
  const elapsed = performance.now() - start
  t.is(outcome.event, 'connectError')
  if (outcome.event !== 'connectError') return
  t.is(outcome.args[1]?.code, 'ERR_TLS_HANDSHAKE_TIMEOUT')
  t.true(outcome.args[0] < 0)
  t.true(elapsed >= 9900 && elapsed < 15_500, `after ${Math.round(elapsed)} ms`)
})

// --- ending and closing ---------------------------------------------------------------------------

test('shutdown(): sends close_notify then FIN: the node:tls peer sees the data then end; when it ends too, onClose(socket, 0)', async (t) => {
  const server = tlsServer(t, SERVER, {
    open(socket) {
      socket.write('bye')
      socket.shutdown()
      t.true(socket.isShutDown)
      t.is(socket.write('after shutdown'), 0)
      t.false(socket.send('after shutdown'))
    },
  })
  const client = await nodeTlsConnect(t, server.port)
  const received = collect(client)
  const ended = once(client, 'end')
  await ended
  t.is(received.bytes().toString(), 'bye')
  const socket = server.tracker.first('open')!.socket
  t.false(socket.isClosed, 'the socket waits for the peer to finish too')
  client.end()
  const close = await server.tracker.wait('close')
  t.deepEqual(close.args, [0, undefined])
  server.tracker.assertLifecycle(t)
})

test('onEnd: a node:tls peer calling end() gives onEnd; the socket stays writable there; the reply arrives, then onClose(socket, 0)', async (t) => {
  const server = tlsServer(t, SERVER, {
    end(socket) {
      t.is(socket.write('reply after end'), 15)
      socket.shutdown()
    },
  })
  const client = await nodeTlsConnect(t, server.port)
  const received = collect(client)
  client.write('request')
  client.end()
  await once(client, 'end')
  t.is(received.bytes().toString(), 'reply after end')
  const socket = server.tracker.first('open')!.socket
  t.is(server.tracker.received(socket).toString(), 'request')
  const close = await server.tracker.wait('close')
  t.deepEqual(close.args, [0, undefined])
  t.deepEqual(server.tracker.events(socket), ['open', 'data', 'end', 'close'])
})

test('onEnd without a handler: a node:tls peer calling end() closes our socket (onClose(socket, 0)); the peer sees the close', async (t) => {
  const server = tlsServer(t, SERVER, {})
  const client = await nodeTlsConnect(t, server.port)
  const closed = once(client, 'close')
  client.end('last words')
  const close = await server.tracker.wait('close')
  t.deepEqual(close.args, [0, undefined])
  await closed
  const socket = close.socket
  t.is(server.tracker.received(socket).toString(), 'last words')
  server.tracker.assertLifecycle(t)
})

test('shutdownRead() on a TLS socket: onEnd follows; the socket still writes; then shutdown() closes it with 0', async (t) => {
  const server = tlsServer(t, SERVER, {
    end(socket) {
      t.is(socket.write('still writing'), 13)
      socket.shutdown()
    },
  })
  const client = await nodeTlsConnect(t, server.port)
  const received = collect(client)
  const socket = (await server.tracker.wait('open')).socket
  socket.shutdownRead()
  await server.tracker.wait('end', socket)
  await once(client, 'end')
  t.is(received.bytes().toString(), 'still writing')
  client.end()
  t.deepEqual((await server.tracker.wait('close', socket)).args, [0, undefined])
})

test('close(): abrupt; onClose(socket, code, reason) before it returns; the node:tls peer sees the close', async (t) => {
  const server = tlsServer(t, SERVER, {})
  const client = await nodeTlsConnect(t, server.port)
  const socket = (await server.tracker.wait('open')).socket
  const closed = once(client, 'close')
  socket.close(42, 'enough')
  t.deepEqual(server.tracker.events(socket), ['open', 'close'])
  t.deepEqual(server.tracker.first('close')!.args, [42, 'enough'])
  t.true(socket.isClosed)
  t.is(socket.write('x'), 0)
  await closed
})

test('a TCP reset under a TLS connection: onClose with a positive errno and ECONNRESET', async (t) => {
  const server = tlsServer(t, SERVER, {})
  const raw = net.connect(server.port, '127.0.0.1')
  t.teardown(() => {
    raw.destroy()
  })
  const client = tls.connect({ socket: raw, ca: CA, servername: 'localhost' })
  client.on('error', () => {})
  await once(client, 'secureConnect')
  const socket = (await server.tracker.wait('open')).socket
  raw.resetAndDestroy()
  const close = await server.tracker.wait('close')
  t.is(close.socket, socket)
  t.true(close.args[0] > 0, `code ${close.args[0]}`)
  t.is(close.args[1]?.code, 'ECONNRESET')
})

// Bytes that cannot begin a TLS handshake close the connection at once (with an alert where
// rustls has one), not by the 10 s handshake timeout; they are counted, never shown to JS.
const GARBAGE: Array<[string, Buffer]> = [
  // Random, but not starting with 0x16 (a handshake record header would be a slow peer).
  ['random bytes', Buffer.concat([Buffer.from([0x42]), randomBytes(4095)])],
  ['zeros', Buffer.alloc(4096)],
  ['plain text', Buffer.from('hello, is anybody there?\n')],
  ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')],
  ['a record of another content type (application data)', Buffer.from([0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5])],
  ['a handshake header announcing a record over the maximum', Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff])],
]
const QUICK_CLOSE_MS = 2000 // the handshake timeout is 10 s

test('garbage to our TLS server (six kinds): each connection closed at once, counted, never shown to JS; another TLS client keeps working', async (t) => {
  const server = tlsServer(t)
  const good = await nodeTlsConnect(t, server.port)
  await roundTrip(good, 'before')
  for (const [kind, garbage] of GARBAGE) {
    const raw = await nodeConnect(t, server.port)
    const rawClosed = once(raw, 'close', QUICK_CLOSE_MS + 1000)
    const answer = collect(raw) // reading: a paused node:net socket would never see the end
    const sentAt = performance.now()
    raw.write(garbage)
    await rawClosed
    const closedAfter = performance.now() - sentAt
    t.true(closedAfter < QUICK_CLOSE_MS, `${kind}: closed after ${closedAfter.toFixed(0)} ms, not at once`)
    // At most a fatal alert record (content type 21), nothing that looks like a handshake.
    t.true(answer.length() === 0 || answer.bytes()[0] === 0x15, `${kind}: the server answered ${answer.bytes().toString('hex')}`)
  }
  t.is(server.listener.rejectedConnections, GARBAGE.length)
  await roundTrip(good, 'after')
  await roundTrip(await nodeTlsConnect(t, server.port), 'a new client')
  t.is(server.tracker.sockets().length, 2, 'only the two TLS clients were shown to JS')
  t.is(server.tracker.count('close'), 0)
  t.is(server.listener.rejectedConnections, GARBAGE.length, 'the TLS clients were not counted')
  server.listener.close()
  t.is(server.listener.rejectedConnections, GARBAGE.length, 'the count stays readable once closed')
})

test('garbage after the handshake (a corrupted record): our socket closes with ERR_TLS_DECRYPT (negative code); the server keeps serving', async (t) => {
  const server = tlsServer(t)
  const raw = net.connect(server.port, '127.0.0.1')
  t.teardown(() => {
    raw.destroy()
  })
  const client = tls.connect({ socket: raw, ca: CA, servername: 'localhost' })
  client.on('error', () => {})
  await once(client, 'secureConnect')
  await roundTrip(client, 'fine so far')
  // An application-data record header followed by bytes that do not authenticate.
  const record = Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0x40]), randomBytes(0x40)])
  // Written under node's TLS layer, straight to the TCP socket.
  ;(raw as any)._handle.writeLatin1String({ oncomplete() {} }, record.toString('latin1'))
  const close = await server.tracker.wait('close')
  t.true(close.args[0] < 0, `code ${close.args[0]}`)
  t.is(close.args[1]?.code, 'ERR_TLS_DECRYPT', close.args[1]?.message)
  await roundTrip(await nodeTlsConnect(t, server.port), 'still serving')
})

// --- adoptSocket ----------------------------------------------------------------------------------

test('adoptSocket: a TLS socket moved into a TLS child keeps its session: data continues, the child handlers get it', async (t) => {
  const server = tlsServer(t, { ...SERVER, alpnProtocols: ['h2'] }, {
    data(socket, data) {
      const text = data.toString()
      socket.write(`parent:${text};`)
      if (text === 'move') child.adoptSocket(socket)
    },
  })
  const child = server.ctx.createChild()
  const childTracker = new Tracker(child, {
    data(socket, data) {
      socket.write(`child:${data.toString()};`)
    },
  })
  const client = await nodeTlsConnect(t, server.port, { servername: 'localhost', ALPNProtocols: ['h2'] })
  const socket = (await server.tracker.wait('open')).socket
  socket.ext = 'kept'
  await roundTrip(client, 'one', 'parent:one;')
  await roundTrip(client, 'move', 'parent:move;')
  t.is(socket.context, child)
  await roundTrip(client, 'two', 'child:two;')
  t.true(socket.isTls)
  t.is(socket.servername, 'localhost')
  t.is(socket.alpnProtocol, 'h2')
  t.is(socket.ext, 'kept')
  t.deepEqual(childTracker.events(socket), ['data'])
  client.end()
  await childTracker.wait('close', socket)
  t.deepEqual(server.tracker.events(socket), ['open', 'data', 'data'])
})

test('adoptSocket: a TLS socket into a plain context (and a plain one into a TLS context) throws ERR_INVALID_ARG_VALUE; the socket stays and works', async (t) => {
  const server = tlsServer(t)
  const plain = new SocketContext(server.loop)
  t.teardown(() => plain.close())
  const client = await nodeTlsConnect(t, server.port)
  const socket = (await server.tracker.wait('open')).socket
  const err: any = t.throws(() => plain.adoptSocket(socket))
  t.is(err?.code, 'ERR_INVALID_ARG_VALUE')
  t.is(socket.context, server.ctx)
  await roundTrip(client, 'still TLS')

  const plainTracker = new Tracker(plain)
  const listener = plain.listen('127.0.0.1', 0)
  await nodeConnect(t, listener.port)
  const plainSocket = (await plainTracker.wait('open')).socket
  const back: any = t.throws(() => server.ctx.adoptSocket(plainSocket))
  t.is(back?.code, 'ERR_INVALID_ARG_VALUE')
  t.is(plainSocket.context, plain)
})

// --- versions -------------------------------------------------------------------------------------

test("minVersion 'TLSv1.3' server: a node:tls client limited to TLS 1.2 fails; a default one gets TLS 1.3", async (t) => {
  const server = tlsServer(t, { ...SERVER, minVersion: 'TLSv1.3' })
  const err: any = await t.throwsAsync(nodeTlsConnect(t, server.port, { maxVersion: 'TLSv1.2' }))
  t.is(err?.code, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', err?.message)
  const client = await nodeTlsConnect(t, server.port)
  t.is(client.getProtocol(), 'TLSv1.3')
  await roundTrip(client, 'tls 1.3')
  await sleep(50)
  t.is(server.tracker.count('open'), 1)
})

test('a default server speaks TLS 1.2 too: a node:tls client limited to TLS 1.2 echoes (and with a client certificate)', async (t) => {
  const server = tlsServer(t, { ...SERVER, ca: fixture('client-ca.pem') })
  const client = await nodeTlsConnect(t, server.port, { maxVersion: 'TLSv1.2', ...CLIENT_CERT })
  t.is(client.getProtocol(), 'TLSv1.2')
  await roundTrip(client, 'tls 1.2')
  const socket = (await server.tracker.wait('open')).socket
  isCertificate(t, socket.peerCertificate, 'client.pem', "the server's peerCertificate")
})

test("minVersion 'TLSv1.3' client against a node:tls server limited to TLS 1.2: onConnectError ERR_TLS_ALERT_PROTOCOL_VERSION; a default client gets in", async (t) => {
  const echo = await nodeTlsEchoServer({ ...SERVER, maxVersion: 'TLSv1.2' })
  t.teardown(() => echo.close())
  const { ctx, loop } = newContext(t, { tls: { ca: CA, minVersion: 'TLSv1.3' } })
  const tracker = new Tracker(ctx)
  const socket = ctx.connect('localhost', echo.port)
  const outcome = await settled(tracker, socket)
  t.is(outcome.event, 'connectError')
  if (outcome.event !== 'connectError') return
  t.is(outcome.args[1]?.code, 'ERR_TLS_ALERT_PROTOCOL_VERSION', outcome.args[1]?.message)
  t.true(outcome.args[0] < 0)
  const lenient = tlsClient(t, loop, { ca: CA })
  const ok = lenient.ctx.connect('localhost', echo.port)
  t.is((await settled(lenient.tracker, ok)).event, 'open')
  ok.write('1.2')
  await until(() => lenient.tracker.received(ok).length >= 3, 'the echo')
  t.is(lenient.tracker.received(ok).toString(), '1.2')
})

// --- Unix sockets ---------------------------------------------------------------------------------

test("TLS over Unix sockets: listenUnix + connectUnix with TLS contexts; the client verifies 'localhost' by default", async (t) => {
  const server = newContext(t, { tls: SERVER })
  const serverSockets: Socket[] = []
  const serverTracker = new Tracker(server.ctx, {
    open(socket) {
      serverSockets.push(socket)
    },
    data(socket, data) {
      socket.write(data)
    },
  })
  const { ctx, tracker } = tlsClient(t, server.loop, { ca: CA }, {
    open(socket) {
      socket.write('over unix')
    },
  })
  const socketPath = tmpSocketPath(t, 'tls')
  const listener = server.ctx.listenUnix(socketPath)
  t.is(listener.port, -1)
  const socket = ctx.connectUnix(socketPath)
  t.true(socket.isTls)
  const outcome = await settled(tracker, socket)
  t.is(outcome.event, 'open', `connect failed: ${outcome.args[1]?.code}`)
  t.deepEqual(outcome.args, [true, socketPath])
  isCertificate(t, socket.peerCertificate, 'server.pem', "the client's peerCertificate")
  t.is(socket.servername, 'localhost')
  await until(() => tracker.received(socket).length >= 9, 'the echo')
  t.is(tracker.received(socket).toString(), 'over unix')
  t.is(serverSockets.length, 1)
  t.is(serverSockets[0].servername, 'localhost')
  t.is(serverSockets[0].remotePort, -1)
  t.is(serverSockets[0].peerCertificate, undefined)
  socket.shutdown()
  await until(() => tracker.count('close') === 1 && serverTracker.count('close') === 1, 'both closes')
  tracker.assertLifecycle(t)
  serverTracker.assertLifecycle(t)
})

test('TLS over Unix sockets: a servername the certificate does not cover fails with ERR_TLS_CERT_ALTNAME_INVALID', async (t) => {
  const server = newContext(t, { tls: SERVER })
  const serverTracker = new Tracker(server.ctx)
  const socketPath = tmpSocketPath(t, 'tls-name')
  server.ctx.listenUnix(socketPath)
  const client = tlsClient(t, server.loop, { ca: CA, servername: 'wrong.test' })
  await expectConnectError(t, client.tracker, client.ctx.connectUnix(socketPath), 'ERR_TLS_CERT_ALTNAME_INVALID')
  await sleep(50)
  t.deepEqual(serverTracker.log, [])
})

// --- closing contexts and loops -------------------------------------------------------------------

test('context.close() and loop.close() with open TLS sockets: onClose for each before close() returns', async (t) => {
  const server = tlsServer(t)
  const client = tlsClient(t, server.loop, { ca: CA })
  const sockets = Array.from({ length: 5 }, () => client.ctx.connect('localhost', server.port))
  for (const socket of sockets) t.is((await settled(client.tracker, socket)).event, 'open')
  await until(() => server.tracker.count('open') === 5, 'five accepts')
  client.ctx.close()
  t.is(client.tracker.count('close'), 5)
  t.true(sockets.every((socket) => socket.isClosed))
  await until(() => server.tracker.count('close') === 5, 'the server side closes')
  // The server's listener still accepts; loop.close() closes what is open.
  const again = client.ctx.connect('localhost', server.port)
  t.is((await settled(client.tracker, again)).event, 'open')
  await until(() => server.tracker.count('open') === 6, 'the sixth accept')
  server.loop.close()
  t.is(client.tracker.count('close'), 6)
  t.is(server.tracker.count('close'), 6)
  client.tracker.assertLifecycle(t)
  server.tracker.assertLifecycle(t)
})

test('many of our TLS clients against our TLS server on one loop: each echoes its own data', async (t) => {
  const server = tlsServer(t)
  const expected = new Map<Socket, Buffer>()
  const client = tlsClient(t, server.loop, { ca: CA }, {
    open(socket) {
      socket.send(expected.get(socket)!)
    },
  })
  for (let i = 0; i < 40; i++) {
    const socket = client.ctx.connect(i % 2 === 0 ? 'localhost' : '127.0.0.1', server.port)
    expected.set(socket, randomBytes(20_000 + i * 3001))
  }
  await until(
    () => [...expected].every(([socket, data]) => client.tracker.received(socket).length >= data.length),
    'every echo',
    20_000,
  )
  for (const [socket, data] of expected) t.is(sha256(client.tracker.received(socket)), sha256(data))
  for (const socket of expected.keys()) socket.shutdown()
  await until(() => client.tracker.count('close') === 40 && server.tracker.count('close') === 40, 'every close', 10_000)
  t.true(client.tracker.log.filter((e) => e.event === 'close').every((e) => e.args[0] === 0))
  client.tracker.assertLifecycle(t)
  server.tracker.assertLifecycle(t)
})

// --- openssl interop (an independent implementation; skipped where openssl is not installed) ------

const withOpenssl = opensslAvailable() ? test : test.skip

withOpenssl('openssl s_client against our server: verifies (CAfile ca.pem), echoes byte-exact, ALPN h2', async (t) => {
  const server = tlsServer(t, { ...SERVER, alpnProtocols: ['h2', 'http/1.1'] })
  const input = 'hello from openssl\nline two\n'
  const result = await runOpensslClient({ port: server.port, servername: 'localhost', caFile: 'ca.pem', alpn: 'h2', input })
  t.false(result.timedOut, result.stderr)
  t.is(result.code, 0, result.stderr)
  t.is(result.stdout, input)
  t.regex(result.stderr, /Verification: OK/)
  const socket = (await server.tracker.wait('open')).socket
  t.is(socket.alpnProtocol, 'h2')
  t.is(socket.servername, 'localhost')
})

withOpenssl('our client against openssl s_server: verifies, requests with a client certificate, echoes byte-exact', async (t) => {
  const openssl = await startOpensslServer({
    cert: 'server.pem',
    key: 'server.key',
    extraArgs: ['-Verify', '1', '-verify_return_error', '-CAfile', fixturePath('client-ca.pem')],
  })
  t.teardown(() => openssl.stop())
  const { ctx } = newContext(t, { tls: { ...CLIENT_CERT, ca: CA } })
  const payload = randomBytes(256 * 1024)
  const tracker = new Tracker(ctx, {
    open(socket) {
      socket.send(payload)
    },
  })
  const socket = ctx.connect('127.0.0.1', openssl.port)
  const outcome = await settled(tracker, socket)
  t.is(outcome.event, 'open', `connect failed: ${outcome.args[1]?.code} ${openssl.output()}`)
  isCertificate(t, socket.peerCertificate, 'server.pem', 'peerCertificate')
  await until(() => tracker.received(socket).length >= payload.length, 'the echo', 15_000)
  t.is(sha256(tracker.received(socket)), sha256(payload))
  socket.close()
})
