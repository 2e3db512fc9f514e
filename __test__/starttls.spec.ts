import { spawn } from 'node:child_process'
import net from 'node:net'
import path from 'node:path'
import { Duplex } from 'node:stream'
import tls from 'node:tls'

import test, { type ExecutionContext } from 'ava'

import { Loop, type LoopOptions, SocketContext, type SocketContextOptions, type Socket, type SocketError, type TlsOptions } from '../index.js'
import { keyCert, subjectOf } from './helpers/interop'
import { ROOT, closedPort, deferred, newContext, randomBytes, runNode, sha256, until, withTimeout } from './helpers/net'
import { fixture, fixturePath, opensslAvailable, startOpensslServer } from './helpers/tls'
import { busyWait, newLoop, sleep, type Teardown } from './helpers/util'

// STARTTLS: a plain socket becomes a TLS socket of another context, on both sides, against
// peers that are not ours (node:tls over an existing socket, openssl s_client -starttls smtp,
// openssl s_server). The cases where a naive upgrade loses or leaks bytes are each here: a
// peer that sends its ClientHello without waiting (read-ahead), one that pipelines it in the
// same write as the command (`head`), clear bytes still queued at the call, and an upgrade
// from a later turn of the event loop.

const SERVER = keyCert('server')
const CA = fixture('ca.pem')
const HAS_OPENSSL = opensslAvailable()
const NO_OPENSSL = 'skipped: no `openssl` on the PATH'

/** A TLS record's first byte (handshake): what must never reach a plain onData. */
const TLS_HANDSHAKE = 0x16

interface StarttlsServer {
  loop: Loop
  plain: SocketContext
  secure: SocketContext
  port: number
  /** Every chunk the plain context's onData saw. */
  plainData: Buffer[]
  /** What the TLS context's onOpen reported, per socket. */
  opened: Array<{ socket: Socket; isClient: boolean; remoteAddress: string }>
  /** Plaintext received over TLS, all sockets. */
  tlsData: Buffer[]
  closes: Array<{ code: number; err: SocketError | undefined }>
}

/**
 * A server that upgrades a connection when `onCommand` says so: the plain context calls it for
 * every chunk; it returns what to do. Over TLS it echoes.
 */
function starttlsServer(
  t: Teardown,
  onCommand: (socket: Socket, data: Buffer, server: StarttlsServer) => void,
  secureOptions: TlsOptions = SERVER,
  plainOptions: SocketContextOptions = {},
  loopOptions: LoopOptions = {},
): StarttlsServer {
  const loop = newLoop(t, loopOptions)
  const plain = new SocketContext(loop, plainOptions)
  const secure = new SocketContext(loop, { tls: secureOptions })
  const server: StarttlsServer = { loop, plain, secure, port: 0, plainData: [], opened: [], tlsData: [], closes: [] }
  plain.onData((socket, data) => {
    server.plainData.push(Buffer.from(data))
    onCommand(socket, data, server)
  })
  secure.onOpen((socket, isClient, remoteAddress) => server.opened.push({ socket, isClient, remoteAddress }))
  secure.onData((socket, data) => {
    server.tlsData.push(Buffer.from(data))
    socket.send(data)
  })
  secure.onEnd((socket) => socket.shutdown())
  secure.onClose((_socket, code, err) => server.closes.push({ code, err: err as SocketError | undefined }))
  server.port = plain.listen('127.0.0.1', 0).port
  return server
}

/** node:tls over an existing socket, verifying our server as `localhost`. */
function nodeTlsOver(socket: net.Socket): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = tls.connect({ socket, servername: 'localhost', ca: CA }, () => resolve(secure))
    secure.once('error', reject)
  })
}

/** Reads `socket` until `pattern` appears; resolves with everything read. */
function readUntil(socket: net.Socket, pattern: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1')
      if (text.includes(pattern)) {
        socket.off('data', onData)
        socket.pause()
        resolve(text)
      }
    }
    socket.on('data', onData)
    socket.once('error', reject)
  })
}

/** Writes `data` over `secure` and resolves with the first `data.length` bytes echoed. */
function echoOver(secure: tls.TLSSocket, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let length = 0
    secure.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      length += chunk.length
      if (length >= data.length) resolve(Buffer.concat(chunks))
    })
    secure.once('error', reject)
    secure.write(data)
  })
}

function commandAt(data: Buffer, command: string): number {
  return data.indexOf(command)
}

/** Upgrades `socket` if `data` holds `command`, handing over what followed it as `head`. */
function upgradeOn(command: string): (socket: Socket, data: Buffer, server: StarttlsServer) => void {
  return (socket, data, { secure }) => {
    const at = commandAt(data, command)
    if (at !== -1) secure.upgrade(socket, { head: data.subarray(at + command.length) })
  }
}

/**
 * A stream over `raw` whose first write (node:tls's ClientHello) goes out in the same
 * `raw.write` as `prefix`: one segment, so the server reads the command and the ClientHello in
 * one chunk.
 */
function pipelined(raw: net.Socket, prefix: string): Duplex {
  let first = true
  const duplex = new Duplex({
    write(chunk: Buffer, _encoding, callback) {
      raw.write(first ? Buffer.concat([Buffer.from(prefix), chunk]) : chunk, callback)
      first = false
    },
    read() {
      raw.resume()
    },
    final(callback) {
      raw.end()
      callback()
    },
  })
  raw.on('data', (chunk: Buffer) => {
    if (!duplex.push(chunk)) raw.pause()
  })
  raw.on('end', () => duplex.push(null))
  return duplex
}

test('server STARTTLS with a node:tls client: the reply leaves in clear first, then TLS both ways; onOpen of the TLS context', async (t) => {
  const server = starttlsServer(t, (socket, data, { secure }) => {
    if (commandAt(data, 'STARTTLS\r\n') === -1) return
    socket.write('220 Ready to start TLS\r\n')
    t.is(secure.upgrade(socket), socket, 'upgrade returns the same Socket')
    t.true(socket.isTls)
    t.is(socket.context, secure)
    // Written before the handshake completed: queued, sent encrypted once it did.
    t.true(socket.send('early\n'))
  })
  const client = net.connect(server.port, '127.0.0.1')
  t.teardown(() => client.destroy())
  await new Promise((resolve) => client.once('connect', resolve))
  client.write('STARTTLS\r\n')
  t.is(await readUntil(client, '\r\n'), '220 Ready to start TLS\r\n', 'the reply came in clear, alone')
  const secure = await nodeTlsOver(client)
  t.is(secure.getProtocol(), 'TLSv1.3')
  const early = await new Promise<string>((resolve) => secure.once('data', (chunk: Buffer) => resolve(chunk.toString())))
  t.is(early, 'early\n', 'what was sent between upgrade() and the handshake arrives first, over TLS')
  const payload = randomBytes(256 * 1024)
  t.is(sha256(await echoOver(secure, payload)), sha256(payload))
  await until(() => server.opened.length === 1, 'the TLS context to see onOpen')
  const [{ socket, isClient, remoteAddress }] = server.opened
  t.false(isClient)
  t.is(remoteAddress, '127.0.0.1')
  t.is(socket.remoteAddress, '127.0.0.1')
  t.is(socket.tlsVersion, 'TLSv1.3')
  t.is(socket.servername, 'localhost')
  t.deepEqual(server.plainData.map((chunk) => chunk.toString()), ['STARTTLS\r\n'], 'the plain context saw only the command')
  secure.end()
  await until(() => server.closes.length === 1, 'the upgraded socket to close')
  t.is(server.closes[0].code, 0)
})

// With borrowData too: read-ahead outlives its batch whenever the Upgraded record comes in a later
// batch (the batch's memory goes back to the loop after its dispatch, so the session gets a
// copy). Here the two usually join one batch, JavaScript being busy: this variant checks that
// borrowing leaves read-ahead intact, not the copy itself (the pause() spec in
// borrow.spec.ts fails without its copy).
for (const borrowData of [false, true]) {
  test(`read-ahead: a ClientHello sent right after the command, read by the loop before upgrade() runs, goes to the TLS session${borrowData ? ' (borrowData)' : ''}`, async (t) => {
    // The peer runs in another process so that it sends while our JavaScript is busy: it writes
    // the command, then 20 ms later starts TLS without waiting for any reply. The server's onData
    // spins 400 ms before it upgrades, so the loop thread has read the ClientHello (in clear)
    // into a batch JavaScript has not dispatched yet.
    let upgradedAfterMs = 0
    const server = starttlsServer(t, (socket, data, { secure }) => {
      if (commandAt(data, 'STARTTLS\n') === -1) return
      t.is(data.length, 'STARTTLS\n'.length, 'the command came alone')
      const start = performance.now()
      busyWait(400)
      upgradedAfterMs = performance.now() - start
      secure.upgrade(socket)
    }, SERVER, { borrowData }, { driveFromJavaScript: false }) // read-ahead is the loop thread's
    const peer = `
      const net = require('node:net'), tls = require('node:tls'), fs = require('node:fs')
      const socket = net.connect(${server.port}, '127.0.0.1', () => {
        socket.write('STARTTLS\\n')
        setTimeout(() => {
          const secure = tls.connect({ socket, servername: 'localhost', ca: fs.readFileSync(${JSON.stringify(fixturePath('ca.pem'))}) }, () => {
            secure.write('ping')
          })
          secure.on('data', (d) => { console.log('echo ' + d.toString() + ' ' + secure.getProtocol()); secure.end() })
          secure.on('error', (e) => { console.log('error ' + e.code); process.exit(1) })
        }, 20)
      })
    `
    const run = await runNode(peer, 15_000)
    t.is(run.stdout.trim(), 'echo ping TLSv1.3', run.stderr)
    t.true(upgradedAfterMs >= 400)
    t.is(server.opened.length, 1)
    t.false(server.plainData.some((chunk) => chunk.includes(TLS_HANDSHAKE)), 'no TLS byte reached the plain onData')
    t.deepEqual(server.plainData.map((chunk) => chunk.toString('latin1')), ['STARTTLS\n'])
  })
}

// With borrowData, `head` is a view of a batch that goes back to the loop when the dispatch
// ends, before the loop's Upgraded record: upgrade() must take a copy.
for (const borrowData of [false, true]) {
  test(`head: a ClientHello pipelined in the same write as the command is handed over with upgrade(socket, { head })${borrowData ? ' (borrowData: head is a lent view)' : ''}`, async (t) => {
    const heads: Buffer[] = []
    const server = starttlsServer(t, (socket, data, { secure }) => {
      const at = commandAt(data, 'STARTTLS\n')
      if (at === -1) return
      const head = data.subarray(at + 'STARTTLS\n'.length)
      heads.push(Buffer.from(head))
      secure.upgrade(socket, { head })
    }, SERVER, { borrowData })
    const client = net.connect(server.port, '127.0.0.1')
    t.teardown(() => client.destroy())
    await new Promise((resolve) => client.once('connect', resolve))
    const secured = new Promise<tls.TLSSocket>((resolve, reject) => {
      const secure = tls.connect({ socket: pipelined(client, 'STARTTLS\n'), servername: 'localhost', ca: CA }, () => resolve(secure))
      secure.once('error', reject)
    })
    const secure = await withTimeout(secured, 10_000, 'the pipelined handshake')
    t.is(heads.length, 1)
    t.true(heads[0].length > 0 && heads[0][0] === TLS_HANDSHAKE, 'the chunk held the ClientHello after the command')
    t.is((await echoOver(secure, Buffer.from('pipelined'))).toString(), 'pipelined')
    secure.end()
  })
}

test('a server that upgrades from a later turn of the event loop: reply and upgrade in the same turn, 50 ms after the command', async (t) => {
  const server = starttlsServer(t, (socket, data, { secure }) => {
    if (commandAt(data, 'STARTTLS\r\n') === -1) return
    setTimeout(() => {
      socket.write('220 Go ahead\r\n')
      secure.upgrade(socket)
    }, 50)
  })
  const client = net.connect(server.port, '127.0.0.1')
  t.teardown(() => client.destroy())
  await new Promise((resolve) => client.once('connect', resolve))
  client.write('STARTTLS\r\n')
  t.is(await readUntil(client, '\r\n'), '220 Go ahead\r\n')
  const secure = await nodeTlsOver(client)
  t.is((await echoOver(secure, Buffer.from('later'))).toString(), 'later')
  secure.end()
})

test('clear bytes send() still buffered at the call (8 MiB, the peer not reading yet) all leave before the first TLS byte', async (t) => {
  const clear = randomBytes(8 * 1024 * 1024)
  let bufferedAtUpgrade = 0
  const server = starttlsServer(t, (socket, data, { secure }) => {
    if (commandAt(data, 'STARTTLS\n') === -1) return
    socket.send(clear)
    bufferedAtUpgrade = socket.bufferedAmount
    secure.upgrade(socket)
  })
  const client = net.connect(server.port, '127.0.0.1')
  t.teardown(() => client.destroy())
  await new Promise((resolve) => client.once('connect', resolve))
  client.pause()
  client.write('STARTTLS\n')
  await sleep(200)
  // Exactly the clear bytes, then (once the client speaks TLS) TLS.
  const received = await new Promise<Buffer>((resolve) => {
    const chunks: Buffer[] = []
    let length = 0
    const onData = (chunk: Buffer) => {
      chunks.push(chunk)
      length += chunk.length
      if (length >= clear.length) {
        client.off('data', onData)
        client.pause()
        resolve(Buffer.concat(chunks))
      }
    }
    client.on('data', onData)
    client.resume()
  })
  t.true(bufferedAtUpgrade > 0, 'some of the clear bytes were still queued when upgrade() ran')
  t.is(received.length, clear.length, 'nothing but the clear bytes came before the client started TLS')
  t.is(sha256(received), sha256(clear))
  const secure = await nodeTlsOver(client)
  t.is((await echoOver(secure, Buffer.from('after'))).toString(), 'after')
  secure.end()
})

test('client STARTTLS against a node:tls server (new tls.TLSSocket(socket, { isServer: true })): verified, echoed', async (t) => {
  const nodeServer = net.createServer((raw) => {
    raw.write('220 ready\r\n')
    raw.once('data', (command) => {
      if (command.toString() !== 'STARTTLS\r\n') return raw.destroy()
      raw.write('220 go ahead\r\n')
      const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: tls.createSecureContext(SERVER) })
      secure.on('data', (chunk) => secure.write(chunk))
      secure.on('end', () => secure.end())
      secure.on('error', () => {})
    })
  })
  await new Promise<void>((resolve) => nodeServer.listen(0, '127.0.0.1', resolve))
  t.teardown(() => nodeServer.close())
  const port = (nodeServer.address() as net.AddressInfo).port

  const { loop, ctx: plain } = newContext(t)
  const secure = new SocketContext(loop, { tls: { ca: CA } })
  const opened = deferred<{ socket: Socket; isClient: boolean; remoteAddress: string }>()
  const echoed = deferred<string>()
  const closed = deferred<number>()
  let greeting = ''
  plain.onData((socket, data) => {
    greeting += data.toString()
    if (greeting === '220 ready\r\n') socket.write('STARTTLS\r\n')
    else if (greeting === '220 ready\r\n220 go ahead\r\n') secure.upgrade(socket, { servername: 'localhost' })
  })
  secure.onOpen((socket, isClient, remoteAddress) => {
    opened.resolve({ socket, isClient, remoteAddress })
    socket.write('over tls')
  })
  secure.onData((socket, data) => {
    echoed.resolve(data.toString())
    socket.shutdown()
  })
  secure.onClose((_socket, code) => closed.resolve(code))
  plain.connect('127.0.0.1', port)
  const open = await withTimeout(opened.promise, 10_000, 'the upgraded client to open')
  t.true(open.isClient)
  t.is(open.remoteAddress, '127.0.0.1')
  t.is(subjectOf(open.socket.peerCertificate), 'CN=localhost')
  t.is(open.socket.tlsVersion, 'TLSv1.3')
  t.is(await withTimeout(echoed.promise, 5000, 'the echo'), 'over tls')
  t.is(await withTimeout(closed.promise, 5000, 'the close'), 0)
})

const opensslTest = HAS_OPENSSL ? test : test.skip

opensslTest(`openssl s_client -starttls smtp against examples/starttls.mjs: greeting, STARTTLS, echo over TLS${HAS_OPENSSL ? '' : ` (${NO_OPENSSL})`}`, async (t) => {
  const port = await closedPort()
  const example = spawn(process.execPath, [path.join(ROOT, 'examples', 'starttls.mjs'), '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => example.kill('SIGKILL'))
  let log = ''
  example.stdout.setEncoding('utf8').on('data', (chunk: string) => (log += chunk))
  await until(() => log.includes('listening on'), 'the example to listen', 10_000)
  const client = spawn(
    'openssl',
    ['s_client', '-starttls', 'smtp', '-connect', `127.0.0.1:${port}`, '-brief', '-nocommands', '-CAfile', fixturePath('ca.pem'),
      '-verify_return_error', '-servername', 'localhost', '-verify_hostname', 'localhost'],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  )
  let stdout = ''
  let stderr = ''
  client.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  client.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  client.stdin.write('echo me over TLS\n')
  await until(() => stdout.includes('echo me over TLS'), `the echo over TLS (stdout ${JSON.stringify(stdout)}, stderr ${stderr})`, 10_000)
  client.stdin.end()
  await new Promise((resolve) => client.once('close', resolve))
  t.regex(stderr, /Verification: OK/)
  t.regex(stderr, /Protocol version: TLSv1\.3/)
  await until(() => log.includes('TLS open (TLSv1.3'), 'the example to report the TLS session')
})

opensslTest(`client upgrade against openssl s_server right after connect: verified, echoed byte for byte${HAS_OPENSSL ? '' : ` (${NO_OPENSSL})`}`, async (t) => {
  const server = await startOpensslServer({ cert: 'server.pem', key: 'server.key' })
  t.teardown(() => server.stop())
  const { loop, ctx: plain } = newContext(t)
  const secure = new SocketContext(loop, { tls: { ca: CA, servername: 'localhost' } })
  const payload = randomBytes(64 * 1024)
  const received: Buffer[] = []
  const done = deferred<void>()
  let receivedBytes = 0
  plain.onOpen((socket) => secure.upgrade(socket))
  secure.onOpen((socket) => socket.send(payload))
  secure.onData((socket, data) => {
    received.push(Buffer.from(data))
    receivedBytes += data.length
    if (receivedBytes >= payload.length) {
      socket.close()
      done.resolve()
    }
  })
  plain.connect('127.0.0.1', server.port)
  await withTimeout(done.promise, 10_000, `the echo (s_server: ${server.output()})`)
  t.is(sha256(Buffer.concat(received)), sha256(payload))
})

test('a failed handshake after upgrade closes with the TLS code, both roles', async (t) => {
  // Server role: the client (node:tls) offers TLS 1.2 only, the context requires TLS 1.3.
  const server = starttlsServer(t, upgradeOn('STARTTLS\n'), { ...SERVER, minVersion: 'TLSv1.3' })
  const raw = net.connect(server.port, '127.0.0.1')
  t.teardown(() => raw.destroy())
  await new Promise((resolve) => raw.once('connect', resolve))
  raw.write('STARTTLS\n')
  const clientError = await new Promise<Error>((resolve) => {
    const options = { socket: raw, servername: 'localhost', ca: CA, maxVersion: 'TLSv1.2' as const }
    const secure = tls.connect(options, () => resolve(new Error('connected')))
    secure.once('error', resolve)
  })
  t.regex(clientError.message, /protocol version|alert/i)
  await until(() => server.closes.length === 1, 'the server side to close')
  t.true(server.closes[0].code < 0)
  t.regex(server.closes[0].err?.code ?? '', /^ERR_TLS_/)
  t.is(server.opened.length, 0)

  // Client role: we do not trust node's certificate.
  const nodeServer = net.createServer((socket) => {
    const secure = new tls.TLSSocket(socket, { isServer: true, secureContext: tls.createSecureContext(SERVER) })
    secure.on('error', () => {})
  })
  await new Promise<void>((resolve) => nodeServer.listen(0, '127.0.0.1', resolve))
  t.teardown(() => nodeServer.close())
  const { loop, ctx: plain } = newContext(t)
  const secure = new SocketContext(loop, { tls: { ca: fixture('other.pem') } })
  const closed = deferred<{ code: number; err: SocketError }>()
  let opened = false
  plain.onOpen((socket) => secure.upgrade(socket, { servername: 'localhost' }))
  secure.onOpen(() => (opened = true))
  secure.onClose((_socket, code, err) => closed.resolve({ code, err: err as SocketError }))
  plain.connect('127.0.0.1', (nodeServer.address() as net.AddressInfo).port)
  const { code, err } = await withTimeout(closed.promise, 10_000, 'the client side to close')
  t.false(opened)
  t.true(code < 0)
  t.regex(err.code, /^ERR_TLS_CERT/)
})

test('the TLS context handshakeTimeout bounds an upgraded handshake: ERR_TLS_HANDSHAKE_TIMEOUT', async (t) => {
  const started = performance.now()
  const server = starttlsServer(t, upgradeOn('STARTTLS\n'), { ...SERVER, handshakeTimeout: 1 })
  const raw = net.connect(server.port, '127.0.0.1')
  t.teardown(() => raw.destroy())
  raw.write('STARTTLS\n') // and never a ClientHello
  await until(() => server.closes.length === 1, 'the handshake timeout', 10_000)
  const elapsed = performance.now() - started
  t.is(server.closes[0].err?.code, 'ERR_TLS_HANDSHAKE_TIMEOUT')
  t.true(elapsed >= 900, `closed after ${elapsed} ms`)
})

test('upgrade refuses what it cannot upgrade with ERR_INVALID_ARG_VALUE, leaving the socket as it was', async (t) => {
  const { loop, ctx: plain } = newContext(t)
  const secure = new SocketContext(loop, { tls: SERVER })
  const otherLoop = newLoop(t)
  const otherSecure = new SocketContext(otherLoop, { tls: SERVER })
  const clientOnly = new SocketContext(loop, { tls: { ca: CA } })
  const echoes: string[] = []
  const accepted = deferred<Socket>()
  plain.onOpen((socket, isClient) => {
    if (!isClient) accepted.resolve(socket)
  })
  plain.onData((socket, data) => {
    echoes.push(data.toString())
  })
  const listener = plain.listen('127.0.0.1', 0)
  const connecting = plain.connect('127.0.0.1', listener.port)
  const refused = (fn: () => unknown, pattern: RegExp) => {
    const err = t.throws(fn) as NodeJS.ErrnoException
    t.is(err.code, 'ERR_INVALID_ARG_VALUE', err.message)
    t.regex(err.message, pattern)
  }
  refused(() => secure.upgrade(connecting), /not open yet/)
  const socket = await withTimeout(accepted.promise, 5000, 'the accept')
  refused(() => otherSecure.upgrade(socket), /another loop/)
  t.throws(() => plain.upgrade(socket), { code: 'ERR_TLS_REQUIRED' })
  t.throws(() => clientOnly.upgrade(socket), { code: 'ERR_TLS_NO_CERTIFICATE' }, 'an accepted socket needs a server certificate')
  t.throws(() => secure.upgrade({} as Socket), { instanceOf: TypeError })
  t.throws(() => secure.upgrade(socket, { head: 'text' as unknown as Buffer }), { instanceOf: TypeError })
  t.throws(() => secure.upgrade(socket, { servername: 42 as unknown as string }), { instanceOf: TypeError })
  // Still a plain socket of `plain`: it writes in clear and its data reaches plain's onData.
  t.false(socket.isTls)
  t.is(socket.context, plain)
  await until(() => connecting.isEstablished, 'the client to open')
  t.is(socket.write('still plain'), 'still plain'.length)
  await until(() => echoes.join('') === 'still plain', 'the clear write to arrive')
  // A TLS socket, and a closed one.
  const tlsSocket = secure.connect('127.0.0.1', listener.port)
  refused(() => secure.upgrade(tlsSocket), /TLS socket already/)
  socket.close()
  refused(() => secure.upgrade(socket), /closed/)
  // A socket shut down cannot send its side of the handshake.
  connecting.shutdown()
  refused(() => secure.upgrade(connecting), /shut down/)
})

test('the peer ending before the handshake: the upgraded socket closes (ECONNRESET), never onOpen', async (t) => {
  const server = starttlsServer(t, (socket, data, { secure }) => {
    if (commandAt(data, 'STARTTLS\n') === -1) return
    busyWait(200) // the FIN arrives before the upgrade applies
    secure.upgrade(socket)
  })
  const raw = net.connect(server.port, '127.0.0.1')
  raw.on('error', () => {})
  await new Promise((resolve) => raw.once('connect', resolve))
  raw.end('STARTTLS\n')
  await until(() => server.closes.length === 1, 'the upgraded socket to close')
  t.is(server.closes[0].err?.code, 'ECONNRESET')
  t.is(server.opened.length, 0)
})

async function upgradedPair(t: ExecutionContext): Promise<{ server: Socket; client: tls.TLSSocket }> {
  const server = starttlsServer(t, upgradeOn('STARTTLS\n'))
  const raw = net.connect(server.port, '127.0.0.1')
  t.teardown(() => raw.destroy())
  await new Promise((resolve) => raw.once('connect', resolve))
  raw.write('STARTTLS\n')
  const client = await nodeTlsOver(raw)
  await until(() => server.opened.length === 1, 'the server side to open')
  return { server: server.opened[0].socket, client }
}

test('an upgraded socket is a full TLS socket: exportKeyingMaterial equals node:tls, cipher as getCipher()', async (t) => {
  const { server, client } = await upgradedPair(t)
  const context = Buffer.from('starttls context')
  t.deepEqual(server.exportKeyingMaterial(48, 'EXPORTER-usockets-test', context), client.exportKeyingMaterial(48, 'EXPORTER-usockets-test', context))
  t.deepEqual(server.cipher, client.getCipher())
  client.end()
})

test('an upgraded server socket serves SNI from its TLS context: onServerName of that context, not of the plain one', async (t) => {
  const asked: Array<[string, string]> = []
  const server = starttlsServer(t, upgradeOn('STARTTLS\n'))
  server.plain.onServerName((_context, name) => asked.push(['plain', name]))
  server.secure.onServerName((context, name) => {
    asked.push(['secure', name])
    context.addServerName(name, keyCert('other'), 'other entry')
  })
  const raw = net.connect(server.port, '127.0.0.1')
  t.teardown(() => raw.destroy())
  await new Promise((resolve) => raw.once('connect', resolve))
  raw.write('STARTTLS\n')
  const client = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const secure = tls.connect({ socket: raw, servername: 'other.test', ca: CA }, () => resolve(secure))
    secure.once('error', reject)
  })
  t.true(client.authorized)
  t.regex(client.getPeerX509Certificate()?.subjectAltName ?? '', /other\.test/)
  await until(() => server.opened.length === 1, 'the server side to open')
  t.deepEqual(asked, [['secure', 'other.test']])
  t.is(server.opened[0].socket.servername, 'other.test')
  t.is(server.secure.findServerNameExt('other.test'), 'other entry')
  client.end()
})
