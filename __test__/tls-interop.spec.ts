import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'

import test, { type ExecutionContext } from 'ava'

import { derOf, describeOutcome, keyCert, ourTlsClient, ourTlsEchoServer, subjectOf } from './helpers/interop'
import { randomBytes, until } from './helpers/net'
import {
  fixture,
  fixturePath,
  nodeTlsEchoServer,
  nodeTlsRequest,
  opensslAvailable,
  runOpensslClient,
  startOpensslServer,
} from './helpers/tls'

// TLS against peers that are not usockets-rs, both directions: the openssl command line
// (s_client / s_server, an independent implementation) and node:tls (also OpenSSL, through
// Node's own API). The fixtures are in test/fixtures/tls (see its README.md): ca.pem signs the
// server certificates, client-ca.pem the client certificate client.pem.

const HAS_OPENSSL = opensslAvailable()
const NO_OPENSSL = 'skipped: no `openssl` (1.1.1 or 3.x, s_client with -nocommands) on the PATH'

/** An openssl test: registered as skipped (saying why) only when openssl is not available. */
function opensslTest(title: string, fn: (t: ExecutionContext) => Promise<void>): void {
  if (HAS_OPENSSL) test(`openssl: ${title}`, fn)
  else test.skip(`openssl: ${title} (${NO_OPENSSL})`, fn)
}

const SERVER = keyCert('server')
const CA = fixture('ca.pem')
const CLIENT_CA = fixture('client-ca.pem')
const CLIENT = keyCert('client')

/** Printable text (s_client's output is decoded as UTF-8), `size` bytes. */
function text(size: number): string {
  const line = 'The quick brown fox jumps over the lazy dog 0123456789.\n'
  return line.repeat(Math.ceil(size / line.length)).slice(0, size)
}

/** What the server tracker saw, for messages. */
function serverEvents(server: ReturnType<typeof ourTlsEchoServer>): string {
  return JSON.stringify(server.tracker.log.map((e) => [e.event, e.args.map((a) => (Buffer.isBuffer(a) ? a.length : a?.code ?? a))]))
}

// --- openssl s_client -> usockets-rs server -----------------------------------------------

opensslTest('s_client talks to our TLS echo server: verified, data echoed byte for byte', async (t) => {
  const server = ourTlsEchoServer(t, SERVER)
  const input = text(64 * 1024)
  const run = await runOpensslClient({
    port: server.port,
    servername: 'localhost',
    caFile: 'ca.pem',
    input,
    extraArgs: ['-verify_hostname', 'localhost'],
  })
  t.false(run.timedOut, `s_client hung: ${run.stderr}`)
  t.is(run.code, 0, run.stderr)
  t.true(run.stdout === input, `echoed ${run.stdout.length} of ${input.length} bytes, or different ones`)
  t.regex(run.stderr, /Verification: OK/)
  t.regex(run.stderr, /Protocol version: TLSv1\.3/)
  t.regex(run.stderr, /Peer certificate: CN ?= ?localhost/)
  await until(() => server.tracker.count('close') === 1, 'the server socket to close')
  t.is(server.tracker.count('open'), 1)
  t.is(server.opened[0].servername, 'localhost')
  t.is(server.receivedBytes(), input.length)
  server.tracker.assertLifecycle(t)
})

for (const offer of ['h2', 'http/1.1,h2']) {
  opensslTest(`s_client -alpn ${offer}: our server with alpnProtocols [h2] agrees on h2`, async (t) => {
    const server = ourTlsEchoServer(t, { ...SERVER, alpnProtocols: ['h2'] })
    const run = await runOpensslClient({ port: server.port, servername: 'localhost', caFile: 'ca.pem', alpn: offer, input: 'ping\n' })
    t.is(run.code, 0, run.stderr)
    t.is(run.stdout, 'ping\n')
    await until(() => server.opened.length === 1, 'the server onOpen')
    t.is(server.opened[0].alpnProtocol, 'h2')
  })
}

opensslTest('s_client -servername other.test gets the certificate added with addServerName', async (t) => {
  const server = ourTlsEchoServer(t, SERVER, [['other.test', keyCert('other')]])
  const other = await runOpensslClient({
    port: server.port,
    servername: 'other.test',
    caFile: 'ca.pem',
    input: 'sni\n',
    extraArgs: ['-verify_hostname', 'other.test'],
  })
  t.is(other.code, 0, other.stderr)
  t.is(other.stdout, 'sni\n')
  t.regex(other.stderr, /Peer certificate: CN ?= ?other\.test/, other.stderr)
  t.regex(other.stderr, /Verification: OK/)

  // Any other name (or none) gets the context's own certificate.
  const plain = await runOpensslClient({ port: server.port, servername: 'localhost', caFile: 'ca.pem', input: 'default\n' })
  t.is(plain.code, 0, plain.stderr)
  t.is(plain.stdout, 'default\n')
  t.regex(plain.stderr, /Peer certificate: CN ?= ?localhost/, plain.stderr)

  await until(() => server.opened.length === 2, 'both server onOpens')
  t.deepEqual(
    server.opened.map((o) => o.servername),
    ['other.test', 'localhost'],
  )
})

opensslTest('s_client -tls1_2 works with the default minVersion and fails with minVersion TLSv1.3', async (t) => {
  const lenient = ourTlsEchoServer(t, SERVER)
  const ok = await runOpensslClient({ port: lenient.port, servername: 'localhost', caFile: 'ca.pem', input: 'v1.2\n', extraArgs: ['-tls1_2'] })
  t.is(ok.code, 0, ok.stderr)
  t.is(ok.stdout, 'v1.2\n')
  t.regex(ok.stderr, /Protocol version: TLSv1\.2/)

  const strict = ourTlsEchoServer(t, { ...SERVER, minVersion: 'TLSv1.3' })
  const refused = await runOpensslClient({ port: strict.port, servername: 'localhost', caFile: 'ca.pem', input: 'v1.2\n', extraArgs: ['-tls1_2'] })
  t.false(refused.timedOut, 's_client hung against a TLS 1.3-only server')
  t.not(refused.code, 0, `a TLS 1.2-only client got through: ${refused.stderr}`)
  t.is(refused.stdout, '')
  t.regex(refused.stderr, /protocol version|no protocols available|wrong version/i, refused.stderr)
  // And TLS 1.3 still works there.
  const v13 = await runOpensslClient({ port: strict.port, servername: 'localhost', caFile: 'ca.pem', input: 'v1.3\n' })
  t.is(v13.code, 0, v13.stderr)
  t.is(v13.stdout, 'v1.3\n')
  await until(() => strict.tracker.count('close') === 1, 'the TLS 1.3 connection to close on the server')
  // The refused handshake never reached JavaScript.
  t.is(strict.tracker.count('open'), 1, serverEvents(strict))
  t.is(strict.tracker.count('close'), 1, serverEvents(strict))
})

opensslTest('s_client with a client certificate: our server with ca verifies it and exposes it', async (t) => {
  const server = ourTlsEchoServer(t, { ...SERVER, ca: CLIENT_CA })
  const run = await runOpensslClient({
    port: server.port,
    servername: 'localhost',
    caFile: 'ca.pem',
    input: 'mutual\n',
    extraArgs: ['-cert', fixturePath('client.pem'), '-key', fixturePath('client.key')],
  })
  t.is(run.code, 0, run.stderr)
  t.is(run.stdout, 'mutual\n')
  await until(() => server.opened.length === 1, 'the server onOpen')
  const peer = server.opened[0].peerCertificate
  t.true(Buffer.isBuffer(peer), 'socket.peerCertificate is not a Buffer')
  t.true(derOf('client.pem').equals(peer as Buffer), `socket.peerCertificate is ${subjectOf(peer)}, not client.pem's DER`)
})

opensslTest('s_client without a client certificate (or an untrusted one) is rejected by our server with ca', async (t) => {
  const server = ourTlsEchoServer(t, { ...SERVER, ca: CLIENT_CA })
  const none = await runOpensslClient({ port: server.port, servername: 'localhost', caFile: 'ca.pem', input: 'no cert\n' })
  t.false(none.timedOut, `s_client without a certificate hung: ${none.stderr}`)
  t.is(none.stdout, '', 'a client without a certificate got data echoed')
  t.not(none.code, 0, `s_client without a certificate exited 0: ${none.stderr}`)
  t.regex(none.stderr, /certificate required|handshake failure|alert/i, none.stderr)

  const untrusted = await runOpensslClient({
    port: server.port,
    servername: 'localhost',
    caFile: 'ca.pem',
    input: 'untrusted\n',
    extraArgs: ['-cert', fixturePath('client-untrusted.pem'), '-key', fixturePath('client-untrusted.key')],
  })
  t.false(untrusted.timedOut, `s_client with an untrusted certificate hung: ${untrusted.stderr}`)
  t.is(untrusted.stdout, '', 'a client with an untrusted certificate got data echoed')
  t.not(untrusted.code, 0, untrusted.stderr)
  t.regex(untrusted.stderr, /unknown ca|bad certificate|alert/i, untrusted.stderr)

  // Neither reached JavaScript.
  t.is(server.tracker.log.length, 0, serverEvents(server))
})

// --- usockets-rs client -> openssl s_server -----------------------------------------------

opensslTest('our TLS client (ca: ca.pem) to s_server at localhost: verified, data echoed', async (t) => {
  const server = await startOpensslServer({ cert: 'server.pem', key: 'server.key' })
  t.teardown(() => server.stop())
  const payload = randomBytes(256 * 1024)
  const result = await ourTlsClient(t, { ca: CA }, 'localhost', server.port, payload)
  t.true(result.complete, `${describeOutcome(result)}\ns_server: ${server.output()}`)
  t.true(result.received.equals(payload), 'the echo differs from what was sent')
  t.true(derOf('server.pem').equals(result.peerCertificate as Buffer), `peerCertificate: ${subjectOf(result.peerCertificate)}`)
  t.is(result.servername, 'localhost')
})

opensslTest('our TLS client with alpnProtocols to s_server -alpn h2 agrees on h2', async (t) => {
  const server = await startOpensslServer({ cert: 'server.pem', key: 'server.key', extraArgs: ['-alpn', 'h2'] })
  t.teardown(() => server.stop())
  const result = await ourTlsClient(t, { ca: CA, alpnProtocols: ['http/1.1', 'h2'] }, 'localhost', server.port, Buffer.from('alpn'))
  t.true(result.complete, describeOutcome(result))
  t.is(result.alpnProtocol, 'h2')
})

opensslTest('our TLS client to s_server with expired.pem: onConnectError ERR_TLS_CERT_EXPIRED', async (t) => {
  const server = await startOpensslServer({ cert: 'expired.pem', key: 'expired.key' })
  t.teardown(() => server.stop())
  const result = await ourTlsClient(t, { ca: CA }, 'localhost', server.port, Buffer.from('x'))
  t.false(result.opened, `onOpen ran for an expired certificate: ${describeOutcome(result)}`)
  t.truthy(result.connectError, describeOutcome(result))
  t.is(result.connectError?.error?.code, 'ERR_TLS_CERT_EXPIRED', describeOutcome(result))
  t.true(typeof result.connectError?.code === 'number' && result.connectError.code !== 0)
})

opensslTest('our TLS client with cert/key to s_server requiring a client certificate', async (t) => {
  const verify = ['-Verify', '1', '-verify_return_error', '-CAfile', fixturePath('client-ca.pem')]
  const server = await startOpensslServer({ cert: 'server.pem', key: 'server.key', extraArgs: verify })
  t.teardown(() => server.stop())
  const payload = randomBytes(32 * 1024)
  const result = await ourTlsClient(t, { ca: CA, ...CLIENT }, 'localhost', server.port, payload)
  t.true(result.complete, `${describeOutcome(result)}\ns_server: ${server.output()}`)
  t.true(result.received.equals(payload))
  t.notRegex(server.output(), /ERROR/, server.output())
})

opensslTest('our TLS client without a certificate is refused by s_server requiring one', async (t) => {
  const verify = ['-Verify', '1', '-verify_return_error', '-CAfile', fixturePath('client-ca.pem')]
  const server = await startOpensslServer({ cert: 'server.pem', key: 'server.key', extraArgs: verify })
  t.teardown(() => server.stop())
  const result = await ourTlsClient(t, { ca: CA }, 'localhost', server.port, Buffer.from('no cert'))
  t.false(result.complete, 'data was echoed to a client without a certificate')
  t.is(result.received.length, 0)
  // TLS 1.3: the client's handshake is complete before the server checks its certificate, so the
  // refusal may come as onConnectError or as an error close right after onOpen.
  const error = result.connectError?.error ?? result.close?.reason
  t.truthy(error, describeOutcome(result))
  t.regex(String(error?.code), /^ERR_TLS_/, describeOutcome(result))
  t.is(server.received().length, 0, 's_server received application data from a client it refused')
})

opensslTest('s_server sends its chain (server-chain.pem): our client verifies through the intermediate', async (t) => {
  const server = await startOpensslServer({ cert: 'server-chain.pem', key: 'server-chain.key' })
  t.teardown(() => server.stop())
  const payload = Buffer.from('through the intermediate')
  const result = await ourTlsClient(t, { ca: CA }, 'localhost', server.port, payload)
  t.true(result.complete, `${describeOutcome(result)}\ns_server: ${server.output()}`)
  t.true(result.received.equals(payload))
  t.true(derOf('server-chain.pem').equals(result.peerCertificate as Buffer), `peerCertificate: ${subjectOf(result.peerCertificate)}`)

  // The control: the same leaf without its intermediate does not verify against ca.pem.
  const leafOnly = path.join(os.tmpdir(), `usockets-test-leaf-${process.pid}.pem`)
  fs.writeFileSync(leafOnly, (fixture('server-chain.pem').toString().match(/-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----\n?/) ?? [''])[0])
  t.teardown(() => fs.rmSync(leafOnly, { force: true }))
  const bare = await startOpensslServer({ cert: leafOnly, key: 'server-chain.key' })
  t.teardown(() => bare.stop())
  const failed = await ourTlsClient(t, { ca: CA }, 'localhost', bare.port, payload)
  t.false(failed.opened, describeOutcome(failed))
  t.is(failed.connectError?.error?.code, 'ERR_TLS_CERT_UNKNOWN_ISSUER', describeOutcome(failed))
})

// --- node:tls <-> usockets-rs ---------------------------------------------------------------

test('node:tls client to our TLS server: verified, 1 MiB echoed, ALPN and SNI seen on both sides', async (t) => {
  const server = ourTlsEchoServer(t, { ...SERVER, alpnProtocols: ['http/1.1'] })
  const payload = randomBytes(1024 * 1024)
  const socket = tls.connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', ca: CA, ALPNProtocols: ['h2', 'http/1.1'] })
  t.teardown(() => {
    socket.destroy()
  })
  const chunks: Buffer[] = []
  let received = 0
  let peerCertificate: Buffer | undefined
  const done = new Promise<void>((resolve, reject) => {
    socket.on('secureConnect', () => {
      peerCertificate = socket.getPeerCertificate().raw
      socket.end(payload)
    })
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      received += chunk.length
    })
    socket.on('error', reject)
    socket.on('close', () => resolve())
  })
  await done
  t.true(socket.authorized, `node did not verify our server: ${socket.authorizationError}`)
  t.is(socket.alpnProtocol, 'http/1.1')
  t.is(received, payload.length)
  t.true(Buffer.concat(chunks).equals(payload), 'the echo differs')
  t.true(derOf('server.pem').equals(peerCertificate as Buffer), `node saw ${subjectOf(peerCertificate)}`)
  await until(() => server.tracker.count('close') === 1, 'the server socket to close')
  t.is(server.opened[0].alpnProtocol, 'http/1.1')
  t.is(server.opened[0].servername, 'localhost')
  t.is(server.opened[0].peerCertificate, undefined, 'a client that sent no certificate has one')
  // The client ended (close_notify + FIN); our server's onEnd shut down: an orderly close.
  t.is(server.tracker.first('close')?.args[0], 0, serverEvents(server))
  server.tracker.assertLifecycle(t)
})

test('node:tls TLS 1.2 client: accepted by default, refused with minVersion TLSv1.3', async (t) => {
  const lenient = ourTlsEchoServer(t, SERVER)
  const v12 = { ca: CA, servername: 'localhost', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' } as const
  const echoed = await nodeTlsRequest(lenient.port, v12, Buffer.from('v1.2'), 4)
  t.is(echoed.toString(), 'v1.2')

  const strict = ourTlsEchoServer(t, { ...SERVER, minVersion: 'TLSv1.3' })
  const err = await t.throwsAsync(nodeTlsRequest(strict.port, v12, Buffer.from('v1.2'), 4))
  t.regex(`${err?.message} ${(err as any)?.code}`, /protocol version|ALERT/i)
  t.is(strict.tracker.log.length, 0, serverEvents(strict))
})

test('our TLS client to a node:tls server: verified, 1 MiB echoed, ALPN agreed', async (t) => {
  const server = await nodeTlsEchoServer({ ...SERVER, ALPNProtocols: ['h2'] })
  t.teardown(() => server.close())
  const seen: Array<{ alpn: string | false | null; servername: string | false | null }> = []
  server.server.on('secureConnection', (socket: tls.TLSSocket) => {
    seen.push({ alpn: socket.alpnProtocol, servername: (socket as any).servername })
  })
  const payload = randomBytes(1024 * 1024)
  const result = await ourTlsClient(t, { ca: CA, alpnProtocols: ['h2', 'http/1.1'] }, 'localhost', server.port, payload)
  t.true(result.complete, `${describeOutcome(result)}; node errors: ${server.errors.map((e) => e.message).join('; ')}`)
  t.true(result.received.equals(payload), 'the echo differs')
  t.is(result.alpnProtocol, 'h2')
  t.true(derOf('server.pem').equals(result.peerCertificate as Buffer))
  await until(() => seen.length === 1, 'the node connection')
  t.is(seen[0].alpn, 'h2')
  t.is(seen[0].servername, 'localhost', 'our client sent no SNI for localhost')
})

test('our TLS client to a node:tls server with a certificate for another name: ERR_TLS_CERT_ALTNAME_INVALID', async (t) => {
  const server = await nodeTlsEchoServer(keyCert('other'))
  t.teardown(() => server.close())
  const result = await ourTlsClient(t, { ca: CA }, 'localhost', server.port, Buffer.from('x'))
  t.false(result.opened, describeOutcome(result))
  t.is(result.connectError?.error?.code, 'ERR_TLS_CERT_ALTNAME_INVALID', describeOutcome(result))
})

test('mutual TLS: node:tls server (requestCert, rejectUnauthorized, ca: client-ca.pem) accepts our client with client.pem', async (t) => {
  const server = await nodeTlsEchoServer({ ...SERVER, requestCert: true, rejectUnauthorized: true, ca: CLIENT_CA })
  t.teardown(() => server.close())
  // Read while the connection is up (once our client closed it, node reports no certificate).
  const seen: Array<{ authorized: boolean; error: Error | null; raw: Buffer | undefined }> = []
  server.server.on('secureConnection', (socket: tls.TLSSocket) => {
    seen.push({ authorized: socket.authorized, error: socket.authorizationError, raw: socket.getPeerCertificate()?.raw })
  })
  const payload = randomBytes(64 * 1024)
  const result = await ourTlsClient(t, { ca: CA, ...CLIENT }, 'localhost', server.port, payload)
  t.true(result.complete, `${describeOutcome(result)}; node errors: ${server.errors.map((e) => e.message).join('; ')}`)
  t.true(result.received.equals(payload))
  await until(() => seen.length === 1, 'the node connection')
  t.true(seen[0].authorized, `node did not authorize our client: ${seen[0].error}`)
  t.true(derOf('client.pem').equals(seen[0].raw as Buffer), `node saw ${subjectOf(seen[0].raw)}`)
})

test('mutual TLS: node:tls server requiring a certificate refuses our client without one', async (t) => {
  const server = await nodeTlsEchoServer({ ...SERVER, requestCert: true, rejectUnauthorized: true, ca: CLIENT_CA })
  t.teardown(() => server.close())
  const result = await ourTlsClient(t, { ca: CA }, 'localhost', server.port, Buffer.from('no cert'))
  t.false(result.complete, 'data was echoed to a client without a certificate')
  const error = result.connectError?.error ?? result.close?.reason
  t.truthy(error, describeOutcome(result))
  t.regex(String(error?.code), /^ERR_TLS_/, describeOutcome(result))
  t.is(server.connections.length, 0, 'node accepted a client without a certificate')
  await until(() => server.errors.length > 0, 'node to report the refused client')
})

test('mutual TLS: node:tls client with client.pem to our server with ca: client-ca.pem', async (t) => {
  const server = ourTlsEchoServer(t, { ...SERVER, ca: CLIENT_CA })
  const echoed = await nodeTlsRequest(server.port, { ca: CA, servername: 'localhost', ...CLIENT }, Buffer.from('mutual'), 6)
  t.is(echoed.toString(), 'mutual')
  await until(() => server.opened.length === 1, 'the server onOpen')
  const peer = server.opened[0].peerCertificate
  t.true(derOf('client.pem').equals(peer as Buffer), `socket.peerCertificate is ${subjectOf(peer)}`)

  // Without a certificate, and with one from an unknown CA, node's client is refused (in TLS 1.3
  // after its own handshake completed: it sees the alert when it waits for the echo).
  await t.throwsAsync(nodeTlsRequest(server.port, { ca: CA, servername: 'localhost' }, Buffer.from('none'), 4))
  await t.throwsAsync(nodeTlsRequest(server.port, { ca: CA, servername: 'localhost', ...keyCert('client-untrusted') }, Buffer.from('bad'), 3))
  t.is(server.tracker.count('open'), 1, serverEvents(server))
})

test('requestCert with ca: node:tls clients without a certificate get in, one that sends a certificate must verify', async (t) => {
  const server = ourTlsEchoServer(t, { ...SERVER, ca: CLIENT_CA, requestCert: true })
  const withCert = await nodeTlsRequest(server.port, { ca: CA, servername: 'localhost', ...CLIENT }, Buffer.from('with'), 4)
  t.is(withCert.toString(), 'with')
  const without = await nodeTlsRequest(server.port, { ca: CA, servername: 'localhost' }, Buffer.from('without'), 7)
  t.is(without.toString(), 'without')
  await t.throwsAsync(nodeTlsRequest(server.port, { ca: CA, servername: 'localhost', ...keyCert('client-untrusted') }, Buffer.from('bad'), 3))
  await until(() => server.opened.length === 2, 'two server onOpens')
  t.true(derOf('client.pem').equals(server.opened[0].peerCertificate as Buffer))
  t.is(server.opened[1].peerCertificate, undefined)
  t.is(server.tracker.count('open'), 2, serverEvents(server))
})
