'use strict'
// 2,000 slow peers on a TLS listener: half send nothing, half trickle a handshake record a byte
// a second. The handshake timeout (10 s, fired on the next 4 s tick) must shed every one of
// them (not before 10 s: they are slow, not wrong), while real node:tls clients keep getting
// echoes with p99 below 200 ms. Peers and clients run in a child process. Env:
// STRESS_SLOW_PEERS (2000).

const net = require('node:net')
const tls = require('node:tls')
const { Report, fixture, percentile, runChild, settle, socketFds, tlsEchoServer } = require('./common')

const COUNT = Number(process.env.STRESS_SLOW_PEERS ?? 2000)
const REAL_CLIENTS = 4
const HANDSHAKE_TIMEOUT_MS = 10000
const TICK_MS = 4000
const SLACK_MS = 2000
const P99_LIMIT_MS = 200

async function runPeers(port, count) {
  const shedMs = []
  let errors = 0
  const peers = Array.from(
    { length: count },
    (_, i) =>
      new Promise((resolve) => {
        const socket = net.connect(port, '127.0.0.1')
        let trickle
        socket.on('connect', () => {
          const openedAt = performance.now()
          // A handshake record header announcing 512 bytes, then one byte a second.
          const bytes = [0x16, 3, 1, 2, 0]
          if (i % 2 === 1) trickle = setInterval(() => socket.write(Buffer.from([bytes.shift() ?? 0x42])), 1000)
          socket.on('close', () => {
            clearInterval(trickle)
            shedMs.push(performance.now() - openedAt)
            resolve()
          })
        })
        socket.on('error', () => {})
        socket.resume()
      }),
  )
  const latencies = []
  let stop = false
  const real = async () => {
    const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: fixture('ca.pem') })
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject))
    while (!stop) {
      const sentAt = performance.now()
      socket.write('ping')
      await new Promise((resolve) => socket.once('data', resolve))
      latencies.push(performance.now() - sentAt)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    socket.end()
  }
  const clients = Array.from({ length: REAL_CLIENTS }, () => real().catch(() => errors++))
  await Promise.all(peers)
  stop = true
  await Promise.all(clients)
  shedMs.sort((a, b) => a - b)
  latencies.sort((a, b) => a - b)
  const result = { shed: shedMs.length, firstShedMs: shedMs[0], lastShedMs: shedMs.at(-1), echoes: latencies.length }
  Object.assign(result, { p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors })
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

async function main() {
  const report = new Report('slow-peers')
  const { loop, ctx, listener, opened } = tlsEchoServer()
  await settle()
  const fdsBefore = socketFds()
  const { code, result } = await runChild(__filename, ['--peers', listener.port, COUNT])
  report.check(code === 0, `the peer process exited with ${code}`)
  report.check(result.shed === COUNT, `${result.shed} of ${COUNT} slow peers shed`)
  report.check(result.firstShedMs >= HANDSHAKE_TIMEOUT_MS - 50, `a slow peer was shed after ${Math.round(result.firstShedMs)} ms`)
  const latest = HANDSHAKE_TIMEOUT_MS + TICK_MS + SLACK_MS
  report.check(result.lastShedMs <= latest, `the last slow peer was shed after ${Math.round(result.lastShedMs)} ms`)
  report.check(result.errors === 0 && result.echoes > 100, `real clients: ${result.errors} errors, ${result.echoes} echoes`)
  report.check(result.p99 < P99_LIMIT_MS, `echo p99 ${result.p99.toFixed(1)} ms`)
  report.check(opened() === REAL_CLIENTS, `JavaScript saw ${opened()} sockets open, expected the ${REAL_CLIENTS} real clients`)
  await settle()
  report.check(socketFds() <= fdsBefore, `socket fds ${fdsBefore} before, ${socketFds()} after`)
  listener.close()
  ctx.close()
  loop.close()
  report.set({
    peers: COUNT,
    firstShedMs: Math.round(result.firstShedMs),
    lastShedMs: Math.round(result.lastShedMs),
    echoes: result.echoes,
    echoP50Ms: Math.round(result.p50 * 10) / 10,
    echoP99Ms: Math.round(result.p99 * 10) / 10,
  })
  report.finish()
}

if (process.argv[2] === '--peers') runPeers(Number(process.argv[3]), Number(process.argv[4]))
else main().catch((err) => {
  console.error(err)
  process.exit(1)
})
