'use strict'
// TLS under load: bulk data, many handshakes, garbage from the network, and the send() /
// onWritable protocol. Run by __test__/tls-stress.spec.ts in a process of its own (so that fd
// counts and RSS are its own, and a crash shows as a failed exit), with --expose-gc.
//
// Usage: node --expose-gc test/tls-stress.js [phase ...]     (default: every phase, in order)
// Phases:
//   echo        our TLS client sends ECHO_MIB MiB of random bytes to our TLS echo server, 64 KiB
//               send()s at a time, waiting for onWritable after a send() that returned false;
//               the server echoes with send() and pauses a socket whose send() returned false
//               until its onWritable. The client checks the sha256 of what came back.
//   echo-node   the same client against a node:tls echo server (socket.pipe(socket)) in this
//               process.
//   handshakes  HANDSHAKES handshakes from our client to our server, CHAINS chains in parallel,
//               each connection: connect, onOpen, send 1 byte, echo, client close; the next one of
//               its chain starts from onClose. After a warm-up (WARMUP handshakes) and a GC the fd
//               count and RSS are taken; after the run and a GC they are taken again: the fd count
//               must be back within FD_SLACK, the RSS growth below RSS_LIMIT_MIB.
//   flood       GARBAGE raw node:net clients send GARBAGE_BYTES of random bytes each (half of them
//               behind a TLS handshake record header, so that the garbage reaches the handshake
//               parser) to our TLS echo server while TLS_CLIENTS of our TLS clients echo 64 KiB
//               each. Every garbage connection must be closed by the server (quickly: not by the
//               handshake timeout), every TLS client must complete, the server's onOpen/onClose
//               must see exactly the TLS clients, and a TLS client after the flood still works.
//   writable    the onWritable protocol in isolation: WRITABLE_ROUNDS rounds of two 40 KiB
//               send()s (80 KiB, above the default 64 KiB highWaterMark) to a sink; after a false
//               the round waits for onWritable. A round whose onWritable does not come within
//               STALL_MS although bufferedAmount is 0 counts as a stall (and moves on; after
//               MAX_STALLS stalls the phase stops early). Run on TLS and, as the control, on plain
//               TCP.
// The waits for onWritable in echo / echo-node have the same watchdog: a stall is counted (and
// the sender or echo server goes on) so that the data checks still run; any stall is a failure.
//
// Env (all optional): TLS_STRESS_ECHO_MIB (8), TLS_STRESS_HANDSHAKES (1000), TLS_STRESS_CHAINS (10),
// TLS_STRESS_WARMUP (50), TLS_STRESS_RSS_LIMIT_MIB (32), TLS_STRESS_FD_SLACK (3),
// TLS_STRESS_GARBAGE (200), TLS_STRESS_GARBAGE_BYTES (32768), TLS_STRESS_TLS_CLIENTS (20),
// TLS_STRESS_WRITABLE_ROUNDS (1000), TLS_STRESS_STALL_MS (500), TLS_STRESS_MAX_STALLS (5),
// TLS_STRESS_PHASE_MS (30000).
//
// Prints one JSON line at the end: { ok, failures, phases: { <phase>: { ok, failures, ... } } }.
// Exit code 0 only if every check of every phase held.

const crypto = require('node:crypto')
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const tls = require('node:tls')

const { Loop, SocketContext } = require('..')
const { fds, sleep } = require('./fixtures/lib')

const MiB = 1024 * 1024
const env = (name, fallback) => Number(process.env[`TLS_STRESS_${name}`] ?? fallback)
const ECHO_BYTES = env('ECHO_MIB', 8) * MiB
const HANDSHAKES = env('HANDSHAKES', 1000)
const CHAINS = env('CHAINS', 10)
const WARMUP = env('WARMUP', 50)
const RSS_LIMIT = env('RSS_LIMIT_MIB', 32) * MiB
const FD_SLACK = env('FD_SLACK', 3)
const GARBAGE = env('GARBAGE', 200)
const GARBAGE_BYTES = env('GARBAGE_BYTES', 32 * 1024)
const TLS_CLIENTS = env('TLS_CLIENTS', 20)
const WRITABLE_ROUNDS = env('WRITABLE_ROUNDS', 1000)
const STALL_MS = env('STALL_MS', 500)
// The writable phase stops after this many stalls (each costs STALL_MS; the point is made).
const MAX_STALLS = env('MAX_STALLS', 5)
const PHASE_MS = env('PHASE_MS', 30_000)
const SEND_CHUNK = 64 * 1024

const FIXTURES = path.join(__dirname, 'fixtures', 'tls')
const fixture = (name) => fs.readFileSync(path.join(FIXTURES, name))
const SERVER_TLS = { key: fixture('server.key'), cert: fixture('server.pem') }
const CLIENT_TLS = { ca: fixture('ca.pem') }

const rss = () => process.memoryUsage.rss()
const sha256 = () => crypto.createHash('sha256')
const round = (x, digits = 1) => Number(x.toFixed(digits))

/** Two full GCs, with a turn of the event loop between (finalizers, weak callbacks). */
async function collectGarbage() {
  if (typeof global.gc !== 'function') return false
  for (let i = 0; i < 3; i++) {
    global.gc()
    await new Promise((resolve) => setImmediate(resolve))
    await sleep(20)
  }
  return true
}

/** A phase's record: its failures and numbers. */
function newReport() {
  const report = { ok: true, failures: [] }
  report.fail = (message) => {
    report.ok = false
    if (report.failures.length < 20) report.failures.push(message)
  }
  return report
}

/** Resolves once `cond()` holds; false after `ms`. */
async function waitUntil(cond, ms) {
  const end = performance.now() + ms
  while (!cond()) {
    if (performance.now() > end) return false
    await sleep(5)
  }
  return true
}

/**
 * The onWritable watchdog: `wait(socket, resume)` records that `socket` waits for onWritable
 * (after a send() that returned false); `writable(socket)` (from onWritable) runs its `resume`.
 * A socket that waits longer than STALL_MS with bufferedAmount 0 counts as a stall and is resumed
 * anyway, so that the rest of the run still checks its data.
 */
function writableWatchdog(report, what) {
  const waiting = new Map()
  let stalls = 0
  let stalledMs = 0
  let waits = 0
  const timer = setInterval(() => {
    const now = performance.now()
    for (const [socket, entry] of waiting) {
      if (now - entry.since < STALL_MS) continue
      if (socket.isClosed) {
        waiting.delete(socket)
        continue
      }
      if (socket.bufferedAmount !== 0) continue // still draining (a slow peer): not a stall
      stalls++
      stalledMs += now - entry.since
      if (stalls <= 3) report.fail(`${what}: send() returned false, the buffer drained (bufferedAmount 0), no onWritable after ${Math.round(now - entry.since)} ms`)
      waiting.delete(socket)
      entry.resume()
    }
  }, 50)
  return {
    wait(socket, resume) {
      waits++
      waiting.set(socket, { since: performance.now(), resume })
    },
    writable(socket) {
      const entry = waiting.get(socket)
      if (entry === undefined) return
      waiting.delete(socket)
      entry.resume()
    },
    stalls: () => stalls,
    stop() {
      clearInterval(timer)
      return { waits, stalls, stalledMs }
    },
  }
}

/**
 * Our TLS client: sends `total` random bytes to 127.0.0.1:`port` in SEND_CHUNK send()s (waiting
 * for onWritable after a false), checks the sha256 of what comes back. Resolves with numbers.
 */
async function echoClient(report, port, what) {
  const loop = new Loop()
  const ctx = new SocketContext(loop, { tls: CLIENT_TLS })
  const watchdog = writableWatchdog(report, `${what} client`)
  const sent = sha256()
  const back = sha256()
  let offset = 0
  let received = 0
  let openedAt = 0
  let doneAt = 0
  let closeCode
  let connectError
  let falses = 0
  const pump = (socket) => {
    while (offset < ECHO_BYTES && !socket.isClosed) {
      const chunk = crypto.randomBytes(Math.min(SEND_CHUNK, ECHO_BYTES - offset))
      sent.update(chunk)
      offset += chunk.length
      if (!socket.send(chunk)) {
        falses++
        watchdog.wait(socket, () => pump(socket))
        return
      }
    }
  }
  ctx
    .onOpen((socket) => {
      openedAt = performance.now()
      pump(socket)
    })
    .onWritable((socket) => watchdog.writable(socket))
    .onData((socket, data) => {
      if (data.length === 0) report.fail(`${what}: onData with an empty Buffer`)
      back.update(data)
      received += data.length
      if (received >= ECHO_BYTES && doneAt === 0) {
        doneAt = performance.now()
        socket.close()
      }
    })
    .onConnectError((_socket, code, err) => {
      connectError = `${code} ${err?.code}: ${err?.message}`
    })
    .onClose((_socket, code, reason) => {
      closeCode = doneAt === 0 ? `${code} ${reason?.code ?? ''}` : 0
    })
  ctx.connect('127.0.0.1', port)
  const finished = await waitUntil(() => doneAt !== 0 || connectError !== undefined || closeCode !== undefined, PHASE_MS)
  const { waits, stalls, stalledMs } = watchdog.stop()
  loop.close()
  if (!finished) report.fail(`${what}: not done after ${PHASE_MS} ms: sent ${offset}, received ${received} of ${ECHO_BYTES}`)
  if (connectError !== undefined) report.fail(`${what}: connect failed: ${connectError}`)
  if (closeCode !== undefined && closeCode !== 0) report.fail(`${what}: closed after ${received} of ${ECHO_BYTES} bytes: ${closeCode}`)
  if (received !== ECHO_BYTES) report.fail(`${what}: received ${received} bytes of ${ECHO_BYTES}`)
  const intact = received === ECHO_BYTES && sent.digest('hex') === back.digest('hex')
  if (received === ECHO_BYTES && !intact) report.fail(`${what}: the echo differs from what was sent (sha256)`)
  const seconds = doneAt !== 0 ? (doneAt - openedAt) / 1000 : -1
  return {
    bytes: received,
    expectedBytes: ECHO_BYTES,
    intact,
    seconds: round(seconds, 3),
    // Payload MiB per second, from onOpen to the last byte back (each byte crossed TLS twice).
    mibPerSecond: seconds > 0 ? round(ECHO_BYTES / MiB / seconds) : -1,
    sendFalses: falses,
    writableWaits: waits,
    writableStalls: stalls,
    // Time lost to stalls of this client (the watchdog waited STALL_MS each).
    stalledMs: Math.round(stalledMs),
  }
}

// --- echo: our client -> our server ------------------------------------------------------------

async function phaseEcho() {
  const report = newReport()
  const loop = new Loop()
  const server = new SocketContext(loop, { tls: SERVER_TLS })
  const watchdog = writableWatchdog(report, 'echo server')
  let serverPauses = 0
  server
    .onData((socket, data) => {
      if (!socket.send(data)) {
        serverPauses++
        socket.pause()
        watchdog.wait(socket, () => socket.resume())
      }
    })
    .onWritable((socket) => watchdog.writable(socket))
  const listener = server.listen('127.0.0.1', 0)
  const client = await echoClient(report, listener.port, 'echo (our server)')
  const serverWatch = watchdog.stop()
  listener.close()
  server.close()
  loop.close()
  Object.assign(report, client, {
    serverPauses,
    serverWritableWaits: serverWatch.waits,
    serverWritableStalls: serverWatch.stalls,
    serverStalledMs: Math.round(serverWatch.stalledMs),
  })
  // A rough throughput without the time the watchdogs waited (their waits do not overlap much:
  // while one side stalls, the other has nothing to do).
  const working = report.seconds - (report.stalledMs + report.serverStalledMs) / 1000
  report.mibPerSecondExcludingStalls = report.seconds > 0 && working > 0 ? round(ECHO_BYTES / MiB / working) : -1
  return report
}

// --- echo-node: our client -> node:tls server -----------------------------------------------

async function phaseEchoNode() {
  const report = newReport()
  const server = tls.createServer(SERVER_TLS, (socket) => {
    socket.on('error', (err) => report.fail(`node:tls server socket: ${err.message}`))
    socket.pipe(socket)
  })
  server.on('tlsClientError', (err) => report.fail(`node:tls server: ${err.message}`))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const client = await echoClient(report, server.address().port, 'echo (node:tls server)')
  await new Promise((resolve) => {
    server.close(resolve)
    // close() waits for connections; the client closed its side already.
    setTimeout(resolve, 2000).unref()
  })
  Object.assign(report, client)
  return report
}

// --- handshakes -----------------------------------------------------------------------------

async function phaseHandshakes() {
  const report = newReport()
  const hasGc = await collectGarbage()
  if (!hasGc) report.fail('run node with --expose-gc: the RSS check needs global.gc')
  const fdsBeforeLoop = fds()
  const loop = new Loop()
  const server = new SocketContext(loop, { tls: SERVER_TLS })
  const client = new SocketContext(loop, { tls: CLIENT_TLS })
  const stats = { serverOpens: 0, serverCloses: 0, serverErrorCloses: {}, clientOpens: 0, clientCloses: 0, connectErrors: {}, echoes: 0 }
  server
    .onOpen(() => stats.serverOpens++)
    .onData((socket, data) => socket.send(data))
    .onClose((_socket, code, reason) => {
      stats.serverCloses++
      if (code !== 0) {
        const key = `${code} ${reason?.code ?? ''}`
        stats.serverErrorCloses[key] = (stats.serverErrorCloses[key] ?? 0) + 1
      }
    })
  const listener = server.listen('127.0.0.1', 0)
  const ONE = Buffer.from('x')
  let started = 0
  let finished = 0
  let target = 0
  let chainsRunning = 0
  const next = () => {
    if (started >= target) {
      chainsRunning--
      return
    }
    started++
    client.connect('127.0.0.1', listener.port)
  }
  client
    .onOpen((socket) => {
      stats.clientOpens++
      socket.send(ONE)
    })
    .onData((socket, data) => {
      if (data.length !== 1 || data[0] !== ONE[0]) report.fail(`handshakes: echo ${data.toString('hex')}`)
      stats.echoes++
      socket.close()
    })
    .onClose(() => {
      stats.clientCloses++
      finished++
      next()
    })
    .onConnectError((_socket, code, err) => {
      const key = `${code} ${err?.code ?? ''}`
      stats.connectErrors[key] = (stats.connectErrors[key] ?? 0) + 1
      finished++
      next()
    })
  const batch = async (count, chains) => {
    target += count
    const goal = finished + count
    for (let i = 0; i < Math.min(chains, count); i++) {
      chainsRunning++
      next()
    }
    const ok = await waitUntil(() => finished >= goal && stats.serverCloses >= stats.serverOpens && chainsRunning === 0, PHASE_MS)
    if (!ok) report.fail(`handshakes: ${finished} of ${goal} done, server ${stats.serverOpens} opens / ${stats.serverCloses} closes after ${PHASE_MS} ms`)
    // The server hears the client's close a moment later.
    await waitUntil(() => stats.serverCloses === stats.serverOpens, 2000)
  }

  // Warm-up: allocator pools, JIT, the TLS configurations' caches.
  await batch(WARMUP, CHAINS)
  await collectGarbage()
  const fdsBefore = fds()
  const rssBefore = rss()
  const memoryBefore = process.memoryUsage()

  const t0 = performance.now()
  await batch(HANDSHAKES, CHAINS)
  const seconds = (performance.now() - t0) / 1000
  await sleep(100)
  await collectGarbage()
  const fdsAfter = fds()
  const rssAfter = rss()
  const memoryAfter = process.memoryUsage()

  listener.close()
  server.close()
  client.close()
  loop.close()
  await collectGarbage()
  const fdsAfterLoopClose = fds()

  const total = WARMUP + HANDSHAKES
  if (stats.clientOpens !== total) report.fail(`handshakes: ${stats.clientOpens} client onOpens of ${total}; connect errors ${JSON.stringify(stats.connectErrors)}`)
  if (stats.echoes !== total) report.fail(`handshakes: ${stats.echoes} echoes of ${total}`)
  if (stats.serverOpens !== total) report.fail(`handshakes: ${stats.serverOpens} server onOpens of ${total}`)
  if (stats.serverCloses !== stats.serverOpens) report.fail(`handshakes: ${stats.serverCloses} server onCloses for ${stats.serverOpens} onOpens`)
  if (fdsAfter > fdsBefore + FD_SLACK) report.fail(`handshakes: ${fdsAfter} fds after the run, ${fdsBefore} before (slack ${FD_SLACK})`)
  if (fdsAfterLoopClose > fdsBeforeLoop + FD_SLACK) report.fail(`handshakes: ${fdsAfterLoopClose} fds after closing the loop, ${fdsBeforeLoop} before creating it`)
  if (rssAfter - rssBefore > RSS_LIMIT) {
    report.fail(`handshakes: RSS grew by ${round((rssAfter - rssBefore) / MiB)} MiB over ${HANDSHAKES} handshakes (limit ${RSS_LIMIT / MiB} MiB)`)
  }
  Object.assign(report, {
    handshakes: HANDSHAKES,
    warmup: WARMUP,
    chains: CHAINS,
    seconds: round(seconds, 3),
    handshakesPerSecond: round(HANDSHAKES / seconds),
    fdsBeforeLoop,
    fdsBefore,
    fdsAfter,
    fdDelta: fdsAfter - fdsBefore,
    fdsAfterLoopClose,
    fdSlack: FD_SLACK,
    rssBefore,
    rssAfter,
    rssDelta: rssAfter - rssBefore,
    rssLimitDelta: RSS_LIMIT,
    // What the RSS growth is made of: V8 keeps the heap it grew (its young generation grows with
    // the allocation rate, up to 2 x 16 MiB semi-spaces) even when little of it is used after a
    // GC; the rest (RSS minus the V8 heap) is native memory: the addon, rustls, malloc.
    heapUsedDelta: memoryAfter.heapUsed - memoryBefore.heapUsed,
    heapTotalDelta: memoryAfter.heapTotal - memoryBefore.heapTotal,
    nonHeapRssDelta: rssAfter - memoryAfter.heapTotal - (rssBefore - memoryBefore.heapTotal),
    ...stats,
  })
  return report
}

// --- flood: garbage next to real TLS clients ------------------------------------------------

async function phaseFlood() {
  const report = newReport()
  const loop = new Loop()
  const server = new SocketContext(loop, { tls: SERVER_TLS })
  const serverStats = { opens: 0, closes: 0, data: 0 }
  server
    .onOpen(() => serverStats.opens++)
    .onData((socket, data) => {
      serverStats.data += data.length
      socket.send(data)
    })
    .onEnd((socket) => socket.shutdown())
    .onClose(() => serverStats.closes++)
  const listener = server.listen('127.0.0.1', 0)
  const port = listener.port

  // The garbage: random bytes, or a handshake record header (type 22, TLS 1.0 record version,
  // a plausible length) followed by random bytes, so that the handshake parser gets them.
  const garbage = { connected: 0, closed: 0, errors: {}, received: 0, closeMs: [] }
  const garbageSockets = []
  const t0 = performance.now()
  for (let i = 0; i < GARBAGE; i++) {
    const socket = net.connect(port, '127.0.0.1')
    garbageSockets.push(socket)
    let connectedAt = 0
    socket.on('connect', () => {
      garbage.connected++
      connectedAt = performance.now()
      const body = crypto.randomBytes(GARBAGE_BYTES)
      if (i % 2 === 1) body.set([0x16, 0x03, 0x01, 0x02, 0x00, 0x01], 0) // a 512-byte ClientHello... of noise
      // Two writes, the second a turn later: the server may already have closed by then.
      socket.write(body.subarray(0, 1024))
      setImmediate(() => {
        if (!socket.destroyed) socket.write(body.subarray(1024))
      })
    })
    socket.on('data', (chunk) => (garbage.received += chunk.length)) // an alert, at most
    socket.on('error', (err) => (garbage.errors[err.code] = (garbage.errors[err.code] ?? 0) + 1))
    socket.on('close', () => {
      garbage.closed++
      garbage.closeMs.push(performance.now() - (connectedAt || t0))
    })
  }

  // The TLS clients, at the same time.
  const clientLoop = new Loop()
  const client = new SocketContext(clientLoop, { tls: CLIENT_TLS })
  const clients = new Map()
  const clientStats = { complete: 0, failed: [] }
  client
    .onOpen((socket) => {
      const state = clients.get(socket)
      socket.send(state.payload)
    })
    .onData((socket, data) => {
      const state = clients.get(socket)
      state.chunks.push(data)
      state.received += data.length
      if (state.received >= state.payload.length && !state.done) {
        state.done = true
        if (Buffer.concat(state.chunks).equals(state.payload)) clientStats.complete++
        else clientStats.failed.push(`client ${state.index}: the echo differs`)
        socket.close()
      }
    })
    .onConnectError((socket, code, err) => {
      const state = clients.get(socket)
      state.done = true
      clientStats.failed.push(`client ${state.index}: connect error ${code} ${err?.code}`)
    })
    .onClose((socket, code, reason) => {
      const state = clients.get(socket)
      if (!state.done) {
        state.done = true
        clientStats.failed.push(`client ${state.index}: closed ${code} ${reason?.code ?? ''} after ${state.received} bytes`)
      }
    })
  const connectClient = (index) => {
    const socket = client.connect('127.0.0.1', port)
    const state = { index, payload: crypto.randomBytes(64 * 1024), chunks: [], received: 0, done: false }
    clients.set(socket, state)
    return state
  }
  const states = []
  for (let i = 0; i < TLS_CLIENTS; i++) states.push(connectClient(i))

  const allDone = await waitUntil(() => states.every((s) => s.done) && garbage.closed === GARBAGE, PHASE_MS)
  const floodSeconds = (performance.now() - t0) / 1000
  if (!allDone) {
    report.fail(`flood: after ${PHASE_MS} ms: ${garbage.closed} of ${GARBAGE} garbage connections closed, ${states.filter((s) => s.done).length} of ${TLS_CLIENTS} TLS clients done`)
  }
  for (const message of clientStats.failed.slice(0, 5)) report.fail(`flood: ${message}`)
  if (clientStats.complete !== TLS_CLIENTS) report.fail(`flood: ${clientStats.complete} of ${TLS_CLIENTS} TLS clients completed`)
  if (garbage.closed !== GARBAGE) report.fail(`flood: the server left ${GARBAGE - garbage.closed} garbage connections open`)
  const closeMs = garbage.closeMs.sort((a, b) => a - b)
  const maxCloseMs = closeMs.length > 0 ? closeMs[closeMs.length - 1] : -1
  // Bad bytes must close a connection at once, not wait for the 10 s handshake timeout.
  if (maxCloseMs > 5000) report.fail(`flood: a garbage connection was closed only after ${Math.round(maxCloseMs)} ms`)

  const tlsClientsComplete = clientStats.complete
  // The server keeps serving.
  const after = connectClient(TLS_CLIENTS)
  states.push(after)
  await waitUntil(() => after.done, 5000)
  const servesAfter = after.done && after.received === after.payload.length
  if (!servesAfter) report.fail(`flood: a TLS client after the flood did not complete: ${clientStats.failed.slice(-1)[0] ?? 'no answer'}`)
  await waitUntil(() => serverStats.closes === serverStats.opens, 2000)
  if (serverStats.opens !== TLS_CLIENTS + 1) report.fail(`flood: the server's onOpen ran ${serverStats.opens} times for ${TLS_CLIENTS + 1} TLS clients (garbage must never open)`)
  if (serverStats.closes !== serverStats.opens) report.fail(`flood: ${serverStats.closes} server onCloses for ${serverStats.opens} onOpens`)

  for (const socket of garbageSockets) socket.destroy()
  listener.close()
  server.close()
  loop.close()
  client.close()
  clientLoop.close()
  Object.assign(report, {
    garbageConnections: GARBAGE,
    garbageConnected: garbage.connected,
    garbageClosed: garbage.closed,
    garbageErrors: garbage.errors,
    garbageBytesReceived: garbage.received,
    garbageCloseMedianMs: closeMs.length > 0 ? Math.round(closeMs[closeMs.length >> 1]) : -1,
    garbageCloseMaxMs: Math.round(maxCloseMs),
    tlsClients: TLS_CLIENTS,
    tlsClientsComplete,
    servesAfter,
    serverOpens: serverStats.opens,
    serverCloses: serverStats.closes,
    floodSeconds: round(floodSeconds, 3),
  })
  return report
}

// --- writable: send() false -> onWritable -----------------------------------------------------

async function writableRounds(report, useTls) {
  const what = useTls ? 'TLS' : 'plain TCP'
  const loop = new Loop()
  const server = new SocketContext(loop, useTls ? { tls: SERVER_TLS } : {})
  server.onData(() => {}) // a sink
  const listener = server.listen('127.0.0.1', 0)
  const client = new SocketContext(loop, useTls ? { tls: CLIENT_TLS } : {})
  const watchdog = writableWatchdog(report, `writable (${what})`)
  const chunk = Buffer.alloc(40 * 1024, 0x5a)
  let rounds = 0
  let falses = 0
  let done = false
  let failure
  const next = (socket) => {
    // A round: two sends, 80 KiB together; the second returns false unless the loop thread has
    // drained the first meanwhile. After a false, the next round waits for onWritable.
    while (rounds < WRITABLE_ROUNDS && watchdog.stalls() < MAX_STALLS) {
      rounds++
      socket.send(chunk)
      if (!socket.send(chunk)) {
        falses++
        watchdog.wait(socket, () => setImmediate(() => next(socket)))
        return
      }
    }
    done = true
    socket.close()
  }
  client
    .onOpen((socket) => next(socket))
    .onWritable((socket) => watchdog.writable(socket))
    .onConnectError((_socket, code, err) => (failure = `connect error ${code} ${err?.code}`))
    .onClose((_socket, code, reason) => {
      if (!done) failure = `closed ${code} ${reason?.code ?? ''} after ${rounds} rounds`
    })
  client.connect('127.0.0.1', listener.port)
  const t0 = performance.now()
  const finished = await waitUntil(() => done || failure !== undefined, PHASE_MS)
  const seconds = (performance.now() - t0) / 1000
  const { waits, stalls, stalledMs } = watchdog.stop()
  listener.close()
  server.close()
  client.close()
  loop.close()
  if (failure !== undefined) report.fail(`writable (${what}): ${failure}`)
  if (!finished) report.fail(`writable (${what}): ${rounds} of ${WRITABLE_ROUNDS} rounds after ${PHASE_MS} ms`)
  return { rounds, sendFalses: falses, writableWaits: waits, stalls, stalledMs: Math.round(stalledMs), seconds: round(seconds, 2) }
}

async function phaseWritable() {
  const report = newReport()
  report.tls = await writableRounds(report, true)
  report.plain = await writableRounds(report, false)
  return report
}

// --- main -------------------------------------------------------------------------------------

const PHASES = { echo: phaseEcho, 'echo-node': phaseEchoNode, handshakes: phaseHandshakes, flood: phaseFlood, writable: phaseWritable }

async function main() {
  const names = process.argv.slice(2)
  const selected = names.length === 0 ? Object.keys(PHASES) : names
  const summary = { ok: true, failures: [], phases: {} }
  for (const name of selected) {
    const phase = PHASES[name]
    if (phase === undefined) {
      summary.ok = false
      summary.failures.push(`no phase ${name} (phases: ${Object.keys(PHASES).join(', ')})`)
      continue
    }
    let report
    try {
      report = await phase()
    } catch (err) {
      report = newReport()
      report.fail(`threw: ${err?.stack ?? err}`)
    }
    delete report.fail
    summary.phases[name] = report
    if (!report.ok) {
      summary.ok = false
      for (const message of report.failures) summary.failures.push(`${name}: ${message}`)
    }
  }
  process.stdout.write(`${JSON.stringify(summary)}\n`)
  process.exitCode = summary.ok ? 0 : 1
}

main().catch((err) => {
  process.stdout.write(`${JSON.stringify({ ok: false, failures: [`main threw: ${err?.stack ?? err}`], phases: {} })}\n`)
  process.exit(1)
})
