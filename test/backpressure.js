'use strict'
// Bounded memory under a fast sender and a slow JavaScript consumer (index.d.ts, LoopOptions.maxPendingBytes).
// Run by __test__/backpressure.spec.ts in its own process, so that RSS numbers are clean.
//
// Usage: node test/backpressure.js                      the test (prints one JSON line)
//        node test/backpressure.js --client <port> <n>  the sender (spawned by the test)
// Env:   BP_MIB (default 512): how much to send, in MiB
//        BP_SLOW_MS_PER_MIB (default 25): synchronous busy time per MiB received in onData
//        BP_LOOP_MAX_PENDING: what the Loop gets as maxPendingBytes (default 8 MiB). The bound
//          checked stays 8 MiB + 64 MiB whatever this is: a huge value here is what the test would
//          see if the loop did not bound its queue (the spec's control case).
//
// A node:net client in a child process (its own buffers do not count) sends BP_MIB MiB of a
// deterministic pattern (byte at offset i = (i * 31 + 7) & 255) as fast as the connection takes
// them, then ends. The server is usockets-rs on loopback with new Loop({ maxPendingBytes: 8 MiB });
// its onData checks every byte incrementally (nothing is kept) and busy-waits BP_SLOW_MS_PER_MIB
// per MiB, so JavaScript is far slower than the network. Checked:
// - every byte arrives, in order, exactly once; onData never gets an empty chunk;
// - the process RSS, sampled in onData (every 256 KiB) and by a 20 ms timer, stays within
//   maxPendingBytes + 64 MiB of the RSS measured right before the sender started (see
//   RSS_SLACK for why);
// - the sender was held back: when it had handed its last byte to the kernel, the server had
//   already consumed all but at most that much (TCP flow control pushed back; an
//   unbounded native queue lets the sender finish almost at once);
// - the loop ends by itself once the socket and the listener are closed.
// Prints JSON: { ok, failures, bytes, expectedBytes, seconds, rssStart, rssPeak, rssPeakDelta,
// rssLimitDelta, ... }. Exit code 0 only if every check held.

const { spawn } = require('node:child_process')
const { busyWait, sleep } = require('./fixtures/lib')

const MiB = 1024 * 1024
const PATTERN_PERIOD = 256 // (i * 31 + 7) & 255 repeats every 256 bytes

/** The pattern from offset 0, `length` bytes. */
function pattern(length) {
  const buf = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) buf[i] = (i * 31 + 7) & 255
  return buf
}

// --- the sender ---------------------------------------------------------------------------

function runSender(port, total) {
  const net = require('node:net')
  // 1 MiB is a multiple of the period: the same chunk, again and again.
  const chunk = pattern(MiB)
  const socket = net.connect({ host: '127.0.0.1', port })
  let sent = 0
  const started = performance.timeOrigin + performance.now()
  socket.on('connect', () => {
    const pump = () => {
      while (sent < total) {
        const length = Math.min(MiB, total - sent)
        sent += length
        const more = socket.write(length === MiB ? chunk : chunk.subarray(0, length))
        if (!more) {
          socket.once('drain', pump)
          return
        }
      }
      socket.end()
    }
    pump()
  })
  // 'finish': every byte was handed to the kernel (after the FIN was queued).
  socket.on('finish', () => {
    const finishedAt = performance.timeOrigin + performance.now()
    process.stdout.write(`${JSON.stringify({ sent, started, finishedAt })}\n`)
  })
  socket.on('error', (err) => {
    process.stderr.write(`client: ${err.stack}\n`)
    process.exitCode = 1
  })
  socket.resume() // nothing comes back; drain it anyway
}

if (process.argv[2] === '--client') {
  runSender(Number(process.argv[3]), Number(process.argv[4]))
  return
}

// --- the server (the test) ------------------------------------------------------------------

const { Loop, SocketContext } = require('..')

const TOTAL = Number(process.env.BP_MIB ?? 512) * MiB
const SLOW_MS_PER_MIB = Number(process.env.BP_SLOW_MS_PER_MIB ?? 25)
const MAX_PENDING = 8 * MiB
const LOOP_MAX_PENDING = Number(process.env.BP_LOOP_MAX_PENDING ?? MAX_PENDING)
// What the process may hold beyond the loop's own limit: 64 MiB. Each batch reaches JavaScript as
// a new ArrayBuffer (the onData Buffers are views of it and may be kept), and V8 collects dead
// ArrayBuffers only once enough of them have accumulated; large batches are counted twice
// towards that (src/binding/mod.rs, take_batch), so the dead ones stay around 32 MiB, and the
// allocators' free lists (glibc, V8) and the batch being copied hold a few more. Measured at
// 512 MiB and 8 MiB: +47 MiB (+79 MiB before large batches were counted twice), against
// +130 MiB and more when the queue is unbounded (the control case).
const RSS_SLACK = 64 * MiB
const RSS_LIMIT_DELTA = MAX_PENDING + RSS_SLACK
const WALL_MS = 60_000

// Expected bytes at any offset: PATTERN[offset % 256 ...]; long enough for a whole 512 KiB read
// (the loop's receive buffer) from any phase; longer chunks are compared piecewise.
const PATTERN = pattern(MiB + PATTERN_PERIOD)
const COMPARE_SPAN = MiB

const failures = []
function fail(message) {
  if (failures.length < 20) failures.push(message)
}

const rss = () => process.memoryUsage.rss()

let received = 0
let chunks = 0
let maxChunk = 0
let mismatchAt = -1
let rssStart = 0
let rssPeak = 0
let rssPeakAtBytes = 0
let nextRssSampleAt = 0
let busyMs = 0
let busyDebtMs = 0
let firstDataAt = 0
let lastDataAt = 0
/** (time, bytes received) every 256 KiB: where the receiver was when the sender finished. */
const progress = []
let ended = false
let closedWith = null
let sender = null
let clientReport = null
let clientExit = null

function sampleRss() {
  const now = rss()
  if (now > rssPeak) {
    rssPeak = now
    rssPeakAtBytes = received
  }
}

/** Compares `data` with the pattern at the current offset; remembers the first mismatch. */
function verify(data) {
  let offset = received
  let at = 0
  while (at < data.length) {
    const phase = offset % PATTERN_PERIOD
    const length = Math.min(COMPARE_SPAN, data.length - at)
    const expected = PATTERN.subarray(phase, phase + length)
    if (!expected.equals(data.subarray(at, at + length))) {
      for (let i = 0; i < length; i++) {
        if (data[at + i] !== expected[i]) {
          mismatchAt = offset + i
          fail(`byte ${mismatchAt}: got ${data[at + i]}, expected ${expected[i]}`)
          return false
        }
      }
    }
    at += length
    offset += length
  }
  return true
}

const loop = new Loop({ maxPendingBytes: LOOP_MAX_PENDING })
const context = new SocketContext(loop)
let server = null

context.onOpen((socket, isClient) => {
  if (isClient) fail('onOpen with isClient true on the server context')
  if (server !== null) fail('a second connection was accepted')
  server = socket
})

context.onData((socket, data) => {
  if (!Buffer.isBuffer(data) || data.length === 0) {
    fail(`onData with ${Buffer.isBuffer(data) ? 'an empty Buffer' : typeof data}`)
    return
  }
  const now = performance.now()
  if (firstDataAt === 0) firstDataAt = now
  lastDataAt = now
  chunks++
  if (data.length > maxChunk) maxChunk = data.length
  if (mismatchAt < 0 && received + data.length <= TOTAL) verify(data)
  received += data.length
  if (received > TOTAL) fail(`received ${received} bytes, more than the ${TOTAL} sent`)
  if (received >= nextRssSampleAt) {
    nextRssSampleAt = received + 256 * 1024
    sampleRss()
    progress.push([performance.timeOrigin + performance.now(), received])
  }
  // The slow part: SLOW_MS_PER_MIB per MiB, paid once at least 1 ms is owed.
  busyDebtMs += (data.length / MiB) * SLOW_MS_PER_MIB
  if (busyDebtMs >= 1) {
    const start = performance.now()
    busyWait(busyDebtMs)
    busyMs += performance.now() - start
    busyDebtMs = 0
  }
})

context.onEnd((socket) => {
  ended = true
  socket.close()
})

context.onClose((socket, code, reason) => {
  closedWith = code === 0 ? 0 : `${code} ${reason?.code}`
  listener.close()
})

const listener = context.listen('127.0.0.1', 0)

/** Bytes the receiver had consumed when the sender finished (from the progress samples). */
function receivedAt(time) {
  let bytes = 0
  for (const [at, count] of progress) {
    if (at > time) break
    bytes = count
  }
  return bytes
}

async function main() {
  const sampler = setInterval(sampleRss, 20)
  // Let the start-up settle, then take the baseline right before the sender starts.
  await sleep(200)
  rssStart = rss()
  rssPeak = rssStart
  const started = performance.now()
  sender = spawn(process.execPath, [__filename, '--client', String(listener.port), String(TOTAL)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NODE_OPTIONS: '' },
  })
  let clientOut = ''
  sender.stdout.setEncoding('utf8').on('data', (chunk) => (clientOut += chunk))
  const clientDone = new Promise((resolve) => sender.on('close', (code, signal) => resolve({ code, signal })))
  const wall = setTimeout(() => {
    fail(`not done after ${WALL_MS} ms: received ${received} of ${TOTAL}, ended ${ended}, closed ${closedWith}`)
    report(started)
    sender.kill('SIGKILL')
    process.exit(1)
  }, WALL_MS)
  wall.unref()

  await loop.run()
  const seconds = (performance.now() - started) / 1000
  clearTimeout(wall)
  clearInterval(sampler)
  sampleRss()
  clientExit = await clientDone
  try {
    clientReport = JSON.parse(clientOut.trim())
  } catch {
    fail(`no report from the sender: ${JSON.stringify(clientOut)}`)
  }
  report(started, seconds)
}

function report(started, seconds = (performance.now() - started) / 1000) {
  if (received !== TOTAL) fail(`received ${received} bytes of ${TOTAL}`)
  if (!ended) fail('no onEnd')
  if (closedWith !== 0) fail(`onClose code ${closedWith}`)
  const rssPeakDelta = rssPeak - rssStart
  if (rssPeakDelta > RSS_LIMIT_DELTA) {
    fail(`RSS peak ${(rssPeakDelta / MiB).toFixed(1)} MiB above the start (limit ${RSS_LIMIT_DELTA / MiB} MiB), reached after ${(rssPeakAtBytes / MiB).toFixed(1)} MiB`)
  }
  let receivedWhenSenderFinished = -1
  if (clientReport !== null) {
    if (clientReport.sent !== TOTAL) fail(`the sender sent ${clientReport.sent} bytes`)
    receivedWhenSenderFinished = receivedAt(clientReport.finishedAt)
    const ahead = TOTAL - receivedWhenSenderFinished
    if (ahead > RSS_LIMIT_DELTA) {
      fail(`the sender finished when the receiver had consumed ${(receivedWhenSenderFinished / MiB).toFixed(1)} MiB: ${(ahead / MiB).toFixed(1)} MiB were buffered somewhere`)
    }
  }
  if (clientExit !== null && (clientExit.code !== 0 || clientExit.signal !== null)) fail(`the sender exited with ${clientExit.code} ${clientExit.signal}`)
  const summary = {
    ok: failures.length === 0,
    failures,
    bytes: received,
    expectedBytes: TOTAL,
    seconds: Number(seconds.toFixed(2)),
    mibPerSecond: Number((received / MiB / seconds).toFixed(1)),
    maxPendingBytes: MAX_PENDING,
    loopMaxPendingBytes: LOOP_MAX_PENDING,
    slowMsPerMiB: SLOW_MS_PER_MIB,
    busyMs: Math.round(busyMs),
    rssStart,
    rssPeak,
    rssPeakDelta,
    rssLimitDelta: RSS_LIMIT_DELTA,
    rssPeakAtBytes,
    chunks,
    maxChunk,
    senderSeconds: clientReport ? Number(((clientReport.finishedAt - clientReport.started) / 1000).toFixed(2)) : -1,
    receivedWhenSenderFinished,
    firstToLastDataMs: Math.round(lastDataAt - firstDataAt),
  }
  process.stdout.write(`${JSON.stringify(summary)}\n`)
  process.exitCode = summary.ok ? 0 : 1
}

main().catch((err) => {
  fail(`main threw: ${err?.stack ?? err}`)
  report(performance.now())
  process.exit(1)
})
