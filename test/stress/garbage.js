'use strict'
// 100,000 garbage inputs to a TLS listener (random bytes, zeros, plain text, an HTTP request, a
// record of another content type, a header announcing a record past the maximum), 200 at a
// time from a child process: every one is closed by the server at once (never by the handshake
// timeout: the slowest close must come far below it), never shown to JavaScript; a real
// node:tls client is served after every 10,000; the fd count is back at the end. Env:
// STRESS_GARBAGE (100000).

const crypto = require('node:crypto')
const net = require('node:net')
const tls = require('node:tls')
const { Report, fixture, percentile, runChild, settle, socketFds, tlsEchoServer } = require('./common')

const COUNT = Number(process.env.STRESS_GARBAGE ?? 100000)
const IN_FLIGHT = 200
const REAL_CLIENT_EVERY = 10000
/** Far below the 10 s handshake timeout: a close this late was not "at once". */
const SLOWEST_CLOSE_MS = 2000

const KINDS = [
  // Random bytes that happen to begin like a record (content type 20-23, version 3.x) may
  // announce a record longer than what was sent: a slow peer by chance, bounded by the
  // handshake timeout instead (see `looksLikeARecord`).
  () => crypto.randomBytes(4096),
  () => Buffer.alloc(4096),
  () => Buffer.from('hello, this is not TLS at all\n'),
  () => Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'),
  () => Buffer.from([0x17, 3, 3, 0, 5, 1, 2, 3, 4, 5]),
  () => Buffer.from([0x16, 3, 1, 0xff, 0xff]),
]

const looksLikeARecord = (bytes) => bytes[0] >= 0x14 && bytes[0] <= 0x17 && bytes[1] === 3

/** The client side: garbage connections, with a real TLS client every REAL_CLIENT_EVERY. */
async function runClients(port, count) {
  const closeMs = []
  let recordLike = 0
  let errors = 0
  let realServed = 0
  const garbage = (i) =>
    new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        const sentAt = performance.now()
        const bytes = KINDS[i % KINDS.length]()
        const slowByChance = i % KINDS.length === 0 && looksLikeARecord(bytes)
        socket.on('close', () => {
          if (slowByChance) recordLike++
          else closeMs.push(performance.now() - sentAt)
          resolve()
        })
        socket.resume()
        socket.write(bytes)
      })
      socket.on('error', () => {}) // a reset is a close too
    })
  const real = () =>
    new Promise((resolve, reject) => {
      const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: fixture('ca.pem') }, () =>
        socket.write('real'),
      )
      socket.once('data', (data) => {
        if (data.toString() === 'real') realServed++
        socket.end()
        resolve()
      })
      socket.on('error', reject)
    })
  let next = 0
  const worker = async () => {
    while (next < count) {
      const i = next++
      if (i > 0 && i % REAL_CLIENT_EVERY === 0) await real().catch(() => errors++)
      await garbage(i)
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker))
  await real().catch(() => errors++)
  closeMs.sort((a, b) => a - b)
  process.stdout.write(
    `${JSON.stringify({ closed: closeMs.length + recordLike, recordLike, p99: percentile(closeMs, 99), max: closeMs.at(-1), realServed, errors })}\n`,
  )
}

async function main() {
  const report = new Report('garbage')
  const { loop, ctx, listener, opened } = tlsEchoServer()
  await settle()
  const fdsBefore = socketFds()
  const started = Date.now()
  const { code, result } = await runChild(__filename, ['--clients', listener.port, COUNT])
  const seconds = (Date.now() - started) / 1000
  const realClients = Math.ceil(COUNT / REAL_CLIENT_EVERY)
  report.check(code === 0, `the client process exited with ${code}`)
  report.check(result.closed === COUNT, `${result.closed} of ${COUNT} garbage connections closed`)
  report.check(result.max < SLOWEST_CLOSE_MS, `the slowest garbage close took ${Math.round(result.max)} ms`)
  report.check(result.realServed === realClients, `${result.realServed} of ${realClients} real clients served`)
  report.check(opened() === realClients, `JavaScript saw ${opened()} sockets open, expected only the ${realClients} real ones`)
  report.check(listener.rejectedConnections === COUNT, `the listener counted ${listener.rejectedConnections} rejected connections`)
  await settle()
  report.check(socketFds() <= fdsBefore, `socket fds ${fdsBefore} before, ${socketFds()} after`)
  listener.close()
  ctx.close()
  loop.close()
  report.set({
    inputs: COUNT,
    rejectedConnections: listener.rejectedConnections,
    randomButRecordLike: result.recordLike,
    perSecond: Math.round(COUNT / seconds),
    closeP99Ms: Math.round(result.p99 * 10) / 10,
    closeMaxMs: Math.round(result.max),
    realServed: result.realServed,
  })
  report.finish()
}

if (process.argv[2] === '--clients') runClients(Number(process.argv[3]), Number(process.argv[4]))
else main().catch((err) => {
  console.error(err)
  process.exit(1)
})
