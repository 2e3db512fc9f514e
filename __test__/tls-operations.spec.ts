import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'

import test from 'ava'

import { SocketContext, type Socket } from '../index.js'
import { derOf, keyCert, ourTlsEchoServer } from './helpers/interop'
import { ROOT, deferred, newContext, until, withTimeout } from './helpers/net'
import { fixture, fixturePath, nodeTlsEchoServer, opensslAvailable } from './helpers/tls'
import { newLoop, runNodeProcess } from './helpers/util'

// What operators of long-running TLS servers need: certificate rotation (setTls), session
// resumption (tickets, shared ticketKeys, caches) seen by node:tls and openssl, introspection
// (tlsVersion, cipher, exportKeyingMaterial), maxVersion / handshakeTimeout, and SSLKEYLOGFILE.

const SERVER = keyCert('server')
const SERVER_RSA = keyCert('server-rsa')
const CA = fixture('ca.pem')
const HAS_OPENSSL = opensslAvailable()
/** node:tls's types want a context; without one is what RFC 5705 calls no context (TLS 1.2 tells them apart). */
const NO_CONTEXT = undefined as unknown as Buffer

function fingerprintOf(der: Buffer): string {
  return new crypto.X509Certificate(der).fingerprint256
}

/** A node:tls connection to our server, verified as `localhost`, once secure. */
function nodeClient(port: number, options: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: CA, ...options }, () => resolve(socket))
    socket.once('error', reject)
  })
}

/** Writes `text` and resolves with the echo. */
function echo(socket: tls.TLSSocket, text: string): Promise<string> {
  return new Promise((resolve) => {
    let received = ''
    const onData = (chunk: Buffer) => {
      received += chunk.toString()
      if (received.length >= text.length) {
        socket.off('data', onData)
        resolve(received)
      }
    }
    socket.on('data', onData)
    socket.write(text)
  })
}

/** A node:tls client's session once a ticket arrived (TLS 1.3 sends them after the handshake). */
async function sessionOf(port: number): Promise<Buffer> {
  const socket = await nodeClient(port)
  const session = new Promise<Buffer>((resolve) => socket.once('session', resolve))
  await echo(socket, 'ticket please')
  const ticket = await withTimeout(session, 5000, 'a session ticket')
  socket.end()
  return ticket
}

test('setTls rotates the certificate for new handshakes; open sockets keep working; bad options throw and change nothing', async (t) => {
  const server = ourTlsEchoServer(t, SERVER)
  const before = await nodeClient(server.port)
  t.teardown(() => before.destroy())
  t.is(before.getPeerX509Certificate()?.fingerprint256, fingerprintOf(derOf('server.pem')))

  server.ctx.setTls(SERVER_RSA)
  const after = await nodeClient(server.port)
  t.teardown(() => after.destroy())
  t.true(after.authorized, 'the new certificate verifies')
  t.is(after.getPeerX509Certificate()?.fingerprint256, fingerprintOf(derOf('server-rsa.pem')), 'a new client sees the new certificate')
  t.is(await echo(before, 'still here'), 'still here', 'the socket opened before the rotation is unaffected')
  t.is(await echo(after, 'new one'), 'new one')

  // The same options fail the constructor and setTls with the same code, and nothing changes.
  const mismatched = { key: fixture('other.key'), cert: fixture('server.pem') }
  const constructed = t.throws(() => new SocketContext(server.loop, { tls: mismatched })) as NodeJS.ErrnoException
  const replaced = t.throws(() => server.ctx.setTls(mismatched)) as NodeJS.ErrnoException
  t.is(replaced.code, constructed.code)
  t.is(replaced.code, 'ERR_TLS_KEY_MISMATCH')
  t.throws(() => server.ctx.setTls({ ca: CA }), { code: 'ERR_TLS_NO_CERTIFICATE' }, 'a serving context keeps a certificate')
  t.throws(() => server.ctx.setTls('key' as never), { instanceOf: TypeError })
  t.throws(() => server.ctx.setTls({ ...SERVER, maxVersion: 'TLSv1.1' as never }), { code: 'ERR_TLS_INVALID_PROTOCOL_VERSION' })
  const still = await nodeClient(server.port)
  t.is(still.getPeerX509Certificate()?.fingerprint256, fingerprintOf(derOf('server-rsa.pem')), 'the failed calls left the rotated configuration')
  still.destroy()
  const { ctx: plain } = newContext(t)
  t.throws(() => plain.setTls(SERVER), { code: 'ERR_TLS_REQUIRED' })
})

test('resumption, node:tls client: the second connect with its session resumes on both ends', async (t) => {
  const server = ourTlsEchoServer(t, SERVER)
  const session = await sessionOf(server.port)
  await until(() => server.opened.length === 1, 'the first server socket')
  t.false(server.opened[0].socket.isSessionReused)
  const resumed = await nodeClient(server.port, { session })
  t.teardown(() => resumed.destroy())
  t.true(resumed.isSessionReused())
  await until(() => server.opened.length === 2, 'the second server socket')
  t.true(server.opened[1].socket.isSessionReused)
  t.is(await echo(resumed, 'resumed data'), 'resumed data')
})

test('resumption, our client: a context resumes with a node:tls server by default', async (t) => {
  const nodeReused: boolean[] = []
  const nodeServer = tls.createServer(SERVER, (socket) => {
    nodeReused.push(socket.isSessionReused())
    socket.on('error', () => {})
    socket.pipe(socket)
  })
  await new Promise<void>((resolve) => nodeServer.listen(0, '127.0.0.1', resolve))
  t.teardown(() => nodeServer.close())
  const port = (nodeServer.address() as AddressInfo).port
  const { ctx } = newContext(t, { tls: { ca: CA } })
  const results: Array<{ reused: boolean; echoed: string }> = []
  const finished = deferred<void>()
  ctx.onOpen((socket) => socket.write('x'))
  ctx.onData((socket, data) => {
    results.push({ reused: socket.isSessionReused, echoed: data.toString() })
    socket.close()
    if (results.length === 1) ctx.connect('localhost', port)
    else finished.resolve()
  })
  ctx.connect('localhost', port)
  await withTimeout(finished.promise, 10_000, 'two connections')
  t.deepEqual(results, [
    { reused: false, echoed: 'x' },
    { reused: true, echoed: 'x' },
  ])
  t.deepEqual(nodeReused, [false, true], 'node:tls saw a full handshake, then a resumed one')
})

const opensslTest = HAS_OPENSSL ? test : test.skip

opensslTest('resumption seen by openssl s_client -sess_out / -sess_in', async (t) => {
  const server = ourTlsEchoServer(t, SERVER)
  const sessionFile = path.join(os.tmpdir(), `usockets-sess-${process.pid}-${Date.now()}.pem`)
  t.teardown(() => fs.rmSync(sessionFile, { force: true }))
  const run = (sessionArgs: string[]): Promise<string> =>
    new Promise((resolve) => {
      const client = spawn(
        'openssl',
        ['s_client', '-connect', `127.0.0.1:${server.port}`, '-servername', 'localhost', '-CAfile', fixturePath('ca.pem'), '-nocommands', ...sessionArgs],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      )
      let stdout = ''
      client.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk
        // The echo comes after the tickets: s_client has stored the session by then.
        if (stdout.includes('resume-me')) client.stdin.end()
      })
      client.stdin.write('resume-me\n')
      client.on('close', () => resolve(stdout))
    })
  const first = await withTimeout(run(['-sess_out', sessionFile]), 10_000, 'the first s_client')
  t.regex(first, /New, TLSv1\.3/)
  t.true(fs.existsSync(sessionFile), 's_client stored the session')
  const second = await withTimeout(run(['-sess_in', sessionFile]), 10_000, 'the second s_client')
  t.regex(second, /Reused, TLSv1\.3/)
  await until(() => server.opened.length === 2, 'both server sockets')
  t.deepEqual(
    server.opened.map(({ socket }) => socket.isSessionReused),
    [false, true],
  )
})

test('ticketKeys: contexts on different loops sharing the keys resume each other\'s sessions; others do a full handshake', async (t) => {
  const ticketKeys = crypto.randomBytes(48)
  const issuer = ourTlsEchoServer(t, { ...SERVER, ticketKeys })
  const sharing = ourTlsEchoServer(t, { ...SERVER, ticketKeys })
  const foreign = ourTlsEchoServer(t, SERVER)
  t.not(issuer.loop, sharing.loop)
  const session = await sessionOf(issuer.port)
  const atSharing = await nodeClient(sharing.port, { session })
  t.true(atSharing.isSessionReused(), 'the sharing server opened the ticket')
  atSharing.destroy()
  const atForeign = await nodeClient(foreign.port, { session })
  t.false(atForeign.isSessionReused(), 'another key: a full handshake')
  t.is(await echo(atForeign, 'works anyway'), 'works anyway')
  atForeign.destroy()
  // Rotation: new keys on the issuer; the ticket under the previous ones still resumes there.
  issuer.ctx.setTls({ ...SERVER, ticketKeys: crypto.randomBytes(48) })
  const afterRotation = await nodeClient(issuer.port, { session })
  t.true(afterRotation.isSessionReused())
  afterRotation.destroy()
  const loop = newLoop(t)
  t.throws(() => new SocketContext(loop, { tls: { ...SERVER, ticketKeys: crypto.randomBytes(32) } }), { instanceOf: RangeError, message: /ticketKeys/ })
  t.throws(() => new SocketContext(loop, { tls: { ...SERVER, ticketKeys: 'keys' as never } }), { instanceOf: TypeError, message: /ticketKeys/ })
})

test('tlsVersion, cipher and exportKeyingMaterial agree with node:tls; maxVersion TLSv1.2', async (t) => {
  for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
    const server = ourTlsEchoServer(t, { ...SERVER, maxVersion })
    const client = await nodeClient(server.port)
    await until(() => server.opened.length === 1, 'the server socket')
    const { socket } = server.opened[0]
    t.is(socket.tlsVersion, maxVersion)
    t.is(client.getProtocol(), maxVersion)
    t.deepEqual(socket.cipher, client.getCipher())
    const context = Buffer.from([1, 2, 3])
    t.deepEqual(socket.exportKeyingMaterial(64, 'EXPORTER-usockets', context), client.exportKeyingMaterial(64, 'EXPORTER-usockets', context))
    t.deepEqual(socket.exportKeyingMaterial(16, 'EXPORTER-usockets'), client.exportKeyingMaterial(16, 'EXPORTER-usockets', NO_CONTEXT))
    client.destroy()
  }
})

test('exportKeyingMaterial and the TLS getters on sockets that cannot answer', async (t) => {
  const nodeServer = await nodeTlsEchoServer(SERVER)
  t.teardown(() => nodeServer.close())
  const { ctx } = newContext(t, { tls: { ca: CA } })
  const opened = deferred<Socket>()
  ctx.onOpen((socket) => opened.resolve(socket))
  const connecting = ctx.connect('localhost', nodeServer.port)
  t.throws(() => connecting.exportKeyingMaterial(32, 'EXPORTER-x'), { code: 'ERR_TLS_INVALID_STATE' }, 'before the handshake')
  t.is(connecting.tlsVersion, undefined)
  t.is(connecting.cipher, undefined)
  t.false(connecting.isSessionReused)
  const socket = await withTimeout(opened.promise, 5000, 'the connect')
  t.is(socket.exportKeyingMaterial(32, 'EXPORTER-x').length, 32)
  await until(() => nodeServer.connections.length === 1, 'node to see it')
  t.deepEqual(socket.exportKeyingMaterial(32, 'EXPORTER-x'), nodeServer.connections[0].exportKeyingMaterial(32, 'EXPORTER-x', NO_CONTEXT))
  t.throws(() => socket.exportKeyingMaterial(0, 'EXPORTER-x'), { instanceOf: RangeError })
  t.throws(() => socket.exportKeyingMaterial(16385, 'EXPORTER-x'), { instanceOf: RangeError })
  t.throws(() => socket.exportKeyingMaterial(32, ''), { instanceOf: TypeError })
  t.throws(() => socket.exportKeyingMaterial(32, 'EXPORTER-x', 'ctx' as never), { instanceOf: TypeError })
  socket.close()
  t.throws(() => socket.exportKeyingMaterial(32, 'EXPORTER-x'), { code: 'ERR_TLS_INVALID_STATE' }, 'once closed')
  const { ctx: plain } = newContext(t)
  const plainOpened = deferred<Socket>()
  plain.onOpen((s, isClient) => isClient && plainOpened.resolve(s))
  plain.connect('127.0.0.1', plain.listen('127.0.0.1', 0).port)
  const plainSocket = await withTimeout(plainOpened.promise, 5000, 'the plain connect')
  t.throws(() => plainSocket.exportKeyingMaterial(32, 'EXPORTER-x'), { code: 'ERR_TLS_INVALID_STATE' }, 'a plain socket')
  t.is(plainSocket.tlsVersion, undefined)
})

test('TLS option checks: versions and handshakeTimeout', (t) => {
  const loop = newLoop(t)
  const make = (tlsOptions: object) => () => new SocketContext(loop, { tls: { ...SERVER, ...tlsOptions } })
  t.throws(make({ maxVersion: 'TLSv1.1' }), { instanceOf: TypeError, code: 'ERR_TLS_INVALID_PROTOCOL_VERSION' })
  t.throws(make({ minVersion: 'TLSv1.3', maxVersion: 'TLSv1.2' }), { instanceOf: TypeError, code: 'ERR_TLS_PROTOCOL_VERSION_CONFLICT' })
  for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 86401]) {
    t.throws(make({ handshakeTimeout: bad }), { instanceOf: RangeError, message: /handshakeTimeout/ }, String(bad))
  }
  t.throws(make({ handshakeTimeout: '10' }), { instanceOf: TypeError, message: /handshakeTimeout/ })
  t.notThrows(make({ handshakeTimeout: 0.5, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' }))
})

test('SSLKEYLOGFILE: the secrets of our side are appended in NSS key log format, the lines node:tls logs for the same session', async (t) => {
  const keyLog = path.join(os.tmpdir(), `usockets-keylog-${process.pid}-${Date.now()}.txt`)
  t.teardown(() => fs.rmSync(keyLog, { force: true }))
  // Our server and a node:tls client in a child whose environment names the file; the client
  // reports the lines OpenSSL gave it ('keylog' events).
  const child = `
    const { Loop, SocketContext } = require(${JSON.stringify(ROOT)})
    const tls = require('node:tls'), fs = require('node:fs')
    const fixture = (name) => fs.readFileSync(${JSON.stringify(fixturePath(''))} + '/' + name)
    const loop = new Loop()
    const ctx = new SocketContext(loop, { tls: { key: fixture('server.key'), cert: fixture('server.pem') } })
    ctx.onData((socket, data) => socket.write(data))
    ctx.onEnd((socket) => socket.close())
    const port = ctx.listen('127.0.0.1', 0).port
    const lines = []
    const client = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: fixture('ca.pem') }, () => client.write('x'))
    client.on('keylog', (line) => lines.push(line.toString().trim()))
    client.on('data', () => { client.end(); setTimeout(() => { console.log(JSON.stringify(lines)); loop.close() }, 100) })
  `
  const run = await runNodeProcess(['-e', child], { timeoutMs: 10_000, env: { SSLKEYLOGFILE: keyLog } })
  t.is(run.code, 0, run.stderr)
  const nodeLines: string[] = JSON.parse(run.stdout)
  const ourLines = fs.readFileSync(keyLog, 'utf8').split('\n').filter((line) => line !== '' && !line.startsWith('#'))
  const format = /^(CLIENT_HANDSHAKE_TRAFFIC_SECRET|SERVER_HANDSHAKE_TRAFFIC_SECRET|CLIENT_TRAFFIC_SECRET_0|SERVER_TRAFFIC_SECRET_0|EXPORTER_SECRET) [0-9a-f]{64} [0-9a-f]{64,96}$/
  t.true(ourLines.length >= 5, `lines: ${ourLines.join('\n')}`)
  for (const line of ourLines) t.regex(line, format)
  t.deepEqual([...ourLines].sort(), [...nodeLines].sort(), 'the same secrets, line for line')
})
