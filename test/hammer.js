'use strict'
// A seeded randomized lifecycle stress test after uSockets' examples/hammer_test.c
// (reference/usockets-semantics.md section 12). Run by __test__/hammer.spec.ts in its own process
// so that fd counts are clean and a crash shows as a failed exit.
//
// Usage: node test/hammer.js [seed]     (or HAMMER_SEED=<seed>; default 1)
// Tuning (env): HAMMER_CLIENTS (default 5000), HAMMER_WALL_MS (default 90000),
//               HAMMER_OP4_TIMEOUT (seconds, default 4), HAMMER_MAX_WRITE (default 65536),
//               HAMMER_MAX_SEND (default 262144), HAMMER_CROSS (default 1: see endOfCallback),
//               HAMMER_VERBOSE=1 (progress on stderr).
//
// One loop, an `http` context and its child `ws`; the server listens on 127.0.0.1:0 through
// `http`. Clients connect through `http`, chained: each client's onOpen starts the next connect
// (onConnectError starts another) until CLIENTS clients opened. Every callback (open, data,
// writable, timeout, end, close) ends with a random operation on its socket:
//   0 close
//   1 adopt into `http` or `ws` (50/50) if not closed, then another random operation
//   2 write a random length in [0, 64 KiB) (result ignored), or 1 time in 8 send() up to 256 KiB
//   3 shutdown + timeout(4)
//   4 timeout(4) + loop.wakeup()
// As in hammer_test.c, onEnd closes the socket first and onTimeout closes a socket that is shut
// down (escape from FIN_WAIT_2) before their random operation, and the random operation also runs
// on closed sockets (onEnd after its close, onClose): there every operation must be a no-op.
// onTimeout then does a random operation on a random other open socket too
// (hammer_test.c's todo "randomly select socket instead of using the one responsible for the
// event"): timeouts fire in bursts on the 4 s ticks, so that other socket often has its own
// onTimeout already queued, and what was done to it (adopt, re-arm, close) must be respected.
//
// Deviations from hammer_test.c, on purpose:
// - Writes are at most 64 KiB (C: 5 MiB) so that the run takes seconds, not minutes.
// - A drawn write length of 0 writes the empty buffer (which must take 0 bytes) and then does
//   operation 4. A zero-length write makes no event on either side (uSockets neither), so if it
//   were a socket pair's last operation that pair would wait forever; hammer_test.c has 1 chance
//   in 5 Mi of that per write, 64 KiB would make it likely across a run.
// - Operation 3 arms timeout(4) instead of timeout(16). On Linux loopback the peer's FIN always
//   comes (the peer's onEnd closes), so the timeout is only a backstop; 16 s (fires 16-20 s later
//   here) would make every run that draws it wait that long at the end.
// - The operations on other sockets (above).
// Run length: the first second does all the connects and most of the traffic; after that the run
// waits for chains of timeouts. usockets-rs fires a timeout on the first 4 s tick at least
// `seconds` after the call, and onTimeout runs just after a tick, so a timeout(4) re-armed there
// fires 8 s later; each onTimeout re-arms one about 1 time in 4. Without the operations on other
// sockets (which end idle sockets sooner) runs took 40-56 s; with one per onTimeout they take
// 16-32 s (2-4 generations of 8 s); the wall-clock limit (90 s) leaves room for 11.
//
// Checked (each violation is recorded; any makes the exit code 1):
// - every callback runs on the handlers of the context the socket currently belongs to
//   (ext.contextName and socket.context), with the socket's own ext object, pads intact;
// - onOpen / onClose exactly once per opened socket, on both sides; nothing fires before onOpen
//   or after onClose; a client connect ends in exactly one of onOpen / onConnectError;
// - onData never gets an empty (or non-Buffer) chunk;
// - onTimeout fires only for an armed timeout (one shot; adoptSocket clears it), no earlier than
//   the `seconds` of the last timeout() call and at most TIMEOUT_GRANULARITY (+2 s slack) later;
// - the ws context never gets onOpen or onConnectError; nobody gets onLongTimeout;
// - write() takes 0 bytes on a closed or shut-down socket; close() on a closed socket fires nothing;
// - `await loop.run()` resolves by itself once the listener is closed after all 2 * CLIENTS
//   closes were counted (not before), and nothing else keeps the process alive;
// - the process fd count after the run is within +2 of the count before the listener existed
//   (taken after the Loop was created: the loop's own fds stay, since it is left open so that
//   the process has to exit by itself).
// Prints one JSON line (the summary) on stdout. On the wall-clock limit it prints the summary with
// `timedOut: true` and a description of the sockets still open, and exits 1.

const { Loop, SocketContext } = require('..')
const { fds: fdCount } = require('./fixtures/lib')

const SEED = (Number(process.argv[2] ?? process.env.HAMMER_SEED ?? 1) >>> 0) || 1
const CLIENTS = Number(process.env.HAMMER_CLIENTS ?? 5000)
const WALL_MS = Number(process.env.HAMMER_WALL_MS ?? 90_000)
const VERBOSE = process.env.HAMMER_VERBOSE === '1'
const CROSS_OP_PROBABILITY = Number(process.env.HAMMER_CROSS ?? 1)
const OP3_TIMEOUT_SECONDS = 4
const OP4_TIMEOUT_SECONDS = Number(process.env.HAMMER_OP4_TIMEOUT ?? 4)
// How late a socket timeout may fire: TIMEOUT_GRANULARITY, plus slack for the JS thread.
const TIMEOUT_LATE_MS = 4000 + 2000
const MAX_WRITE = Number(process.env.HAMMER_MAX_WRITE ?? 64 * 1024)
const MAX_SEND = Number(process.env.HAMMER_MAX_SEND ?? 256 * 1024)
const PAD = 14.652752

// mulberry32: small, fast, good enough; the seed makes the choices reproducible (the interleaving
// of network events still varies from run to run).
let prngState = SEED
function random() {
  prngState = (prngState + 0x6d2b79f5) >>> 0
  let t = prngState
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const rand = (n) => Math.floor(random() * n)

const started = performance.now()
const elapsed = () => Math.round(performance.now() - started)

const payload = Buffer.alloc(MAX_SEND, 0x5a)

const stats = {
  seed: SEED,
  clients: CLIENTS,
  connectsStarted: 0,
  connectErrors: 0,
  openedClients: 0,
  openedServers: 0,
  closedClients: 0,
  closedServers: 0,
  closeCodes: {},
  events: { open: 0, data: 0, writable: 0, timeout: 0, end: 0, close: 0 },
  eventsByContext: { http: 0, ws: 0 },
  ops: { close: 0, adopt: 0, adoptClosedSkipped: 0, write: 0, writeEmpty: 0, send: 0, shutdown: 0, timeout: 0 },
  opsOnClosed: 0,
  crossOps: 0,
  bytesReceived: 0,
  bytesWritten: 0,
  wakeups: 0,
  timeoutsNotArmed: 0,
  timeoutLateMs: { min: Infinity, max: -Infinity },
  allClientsOpenedMs: -1,
  listenerClosedMs: -1,
  runResolvedMs: -1,
  totalMs: -1,
  fds: { beforeLoop: -1, beforeListen: -1, afterRun: -1 },
  violationCount: 0,
  violationKinds: {},
  violations: [],
  timedOut: false,
}

/** Records a failed check: counted by kind (the text before ':', numbers as N), 3 examples each. */
function violation(message) {
  stats.violationCount++
  const kind = message.split(':')[0].replace(/\d+/g, 'N')
  const seen = (stats.violationKinds[kind] ?? 0) + 1
  stats.violationKinds[kind] = seen
  if (seen <= 3 && stats.violations.length < 50) stats.violations.push(`${elapsed()}ms: ${message}`)
  if (VERBOSE) process.stderr.write(`VIOLATION ${message}\n`)
}

stats.fds.beforeLoop = fdCount()
const loop = new Loop({ onWakeup: () => stats.wakeups++ })
const http = new SocketContext(loop)
const ws = http.createChild()
const contexts = { http, ws }
// Every socket ever created with its ext, for the final checks.
const everySocket = []
let nextId = 0
// Sockets between onOpen and onClose, for operations on random other sockets.
const openSockets = []
let listener = null
let listenerClosed = false
let runResolved = false

function newExt(isClient) {
  return {
    pad: PAD,
    id: nextId++,
    isClient,
    contextName: 'http',
    opened: false,
    closed: false,
    connectFailed: false,
    opens: 0,
    closes: 0,
    // The armed timeout as JS set it: { seconds, at } or null (none, fired, or cleared by adoption).
    timeout: null,
    openIndex: -1,
    peer: -1,
    last: '',
    lastOp: '',
    postPad: PAD,
  }
}

function describeSocket(socket) {
  const ext = socket.ext
  return `#${ext?.id} ${ext?.isClient ? 'client' : 'server'} of #${ext?.peer} in ${ext?.contextName} (last event: ${ext?.last}, last op: ${ext?.lastOp})`
}

/**
 * The start of every socket callback: the socket's ext is intact and names the context whose
 * handler runs; the socket is open (or, for onOpen, not opened yet).
 */
function assumeState(socket, name, event) {
  stats.events[event]++
  stats.eventsByContext[name]++
  const ext = socket.ext
  if (ext === null || typeof ext !== 'object' || ext.pad !== PAD || ext.postPad !== PAD) {
    violation(`${event} in ${name}: ext lost or damaged: ${JSON.stringify(ext)}`)
    return false
  }
  const registered = everySocket[ext.id]
  if (registered === undefined || registered.socket !== socket || registered.ext !== ext) {
    violation(`${event} in ${name}: ext of ${describeSocket(socket)} belongs to another socket`)
  }
  if (ext.contextName !== name) violation(`${event} reached the wrong context: ${name}, but ${describeSocket(socket)} was adopted into ${ext.contextName}`)
  if (socket.context !== contexts[name]) violation(`socket.context is not the context whose ${event} handler runs: ${name}, ${describeSocket(socket)}`)
  if (ext.closed) violation(`${event} after onClose: ${describeSocket(socket)}`)
  if (event !== 'open' && !ext.opened) violation(`${event} before onOpen: ${describeSocket(socket)}`)
  if (event !== 'close' && socket.isClosed) violation(`${event} on a socket whose isClosed is true: ${describeSocket(socket)}`)
  ext.last = `${event}@${name}`
  return true
}

const OP_NAMES = ['close', 'adopt', 'write', 'shutdown', 'timeout']

function randomOp(socket, cross = false, chain = '') {
  const ext = socket.ext
  if (socket.isClosed !== ext.closed) violation(`isClosed ${socket.isClosed} but onClose ${ext.closed ? 'ran' : 'did not run'}: ${describeSocket(socket)}`)
  if (ext.closed) stats.opsOnClosed++
  const op = rand(5)
  if (!ext.closed) ext.lastOp = `${chain}${OP_NAMES[op]}${cross ? ' from another socket' : ''} at ${elapsed()} ms`
  switch (op) {
    case 0: {
      stats.ops.close++
      const closesBefore = ext.closes
      socket.close()
      if (!socket.isClosed) violation(`close() returned but isClosed is false: ${describeSocket(socket)}`)
      if (ext.closes !== 1) violation(`close() returned, onClose ran ${ext.closes} times (before: ${closesBefore}): ${describeSocket(socket)}`)
      break
    }
    case 1: {
      let then = chain
      if (socket.isClosed) {
        stats.ops.adoptClosedSkipped++
      } else {
        stats.ops.adopt++
        const name = rand(2) ? 'ws' : 'http'
        const adopted = contexts[name].adoptSocket(socket)
        if (adopted !== socket) violation(`adoptSocket returned another object: ${describeSocket(socket)}`)
        if (socket.ext !== ext) violation(`adoptSocket changed ext: ${describeSocket(socket)}`)
        if (socket.context !== contexts[name]) violation(`adoptSocket into ${name} left socket.context elsewhere: ${describeSocket(socket)}`)
        ext.contextName = name
        // Adoption clears the socket's timeouts.
        ext.timeout = null
        then = `${chain}adopt into ${name}, then `
      }
      randomOp(socket, cross, then)
      break
    }
    case 2: {
      const dead = socket.isClosed || socket.isShutDown
      if (rand(8) === 0) {
        stats.ops.send++
        const length = rand(MAX_SEND)
        const ok = socket.send(payload.subarray(0, length))
        if (dead && ok !== false) violation(`send() on a closed or shut-down socket returned ${ok}: ${describeSocket(socket)}`)
        if (!dead) stats.bytesWritten += length
        break
      }
      const length = rand(MAX_WRITE)
      const written = socket.write(payload.subarray(0, length))
      if (!Number.isInteger(written) || written < 0 || written > length) violation(`write(${length}) returned ${written}`)
      if (dead && written !== 0) violation(`write() on a closed or shut-down socket took ${written} bytes: ${describeSocket(socket)}`)
      stats.bytesWritten += written
      if (length > 0) {
        stats.ops.write++
        break
      }
      // An empty write makes no event (see the header): go on with operation 4.
      stats.ops.writeEmpty++
      if (written !== 0) violation(`write() of 0 bytes returned ${written}`)
      armTimeout(socket, OP4_TIMEOUT_SECONDS)
      loop.wakeup()
      break
    }
    case 3: {
      stats.ops.shutdown++
      socket.shutdown()
      if (!socket.isClosed && !socket.isShutDown) violation(`shutdown() left isShutDown false: ${describeSocket(socket)}`)
      armTimeout(socket, OP3_TIMEOUT_SECONDS)
      break
    }
    case 4: {
      stats.ops.timeout++
      armTimeout(socket, OP4_TIMEOUT_SECONDS)
      loop.wakeup()
      break
    }
  }
}

/**
 * The end of every socket callback: a random operation on its socket and, in onTimeout, with
 * probability CROSS_OP_PROBABILITY, one on a random other open socket (the "randomly select socket
 * instead of using the one responsible for the event" that hammer_test.c leaves as a todo).
 * Timeouts fire in bursts on the 4 s ticks, so the other socket often has its own timeout event
 * already queued behind this one: this checks that what JS did to it in between (close, adopt,
 * re-arm) is respected. (Cross operations from every callback would close the sockets that wait
 * for their timeouts during the busy first second, and no timeout would ever fire.)
 */
function endOfCallback(socket, cross = false) {
  randomOp(socket)
  if (cross && openSockets.length > 1 && random() < CROSS_OP_PROBABILITY) {
    let other = openSockets[rand(openSockets.length)]
    if (other === socket) other = openSockets[(other.ext.openIndex + 1) % openSockets.length]
    stats.crossOps++
    randomOp(other, true)
  }
}

// The client's local port is its server socket's remote port: pairs them, for diagnostics.
const unpaired = new Map()
function pairUp(socket, isClient) {
  const port = isClient ? socket.localPort : socket.remotePort
  const other = unpaired.get(port)
  if (other === undefined) {
    unpaired.set(port, socket.ext)
    return
  }
  unpaired.delete(port)
  socket.ext.peer = other.id
  other.peer = socket.ext.id
}

function addOpen(socket) {
  socket.ext.openIndex = openSockets.length
  openSockets.push(socket)
}

function removeOpen(socket) {
  const index = socket.ext.openIndex
  if (index < 0 || openSockets[index] !== socket) {
    violation(`internal: open-socket list out of sync for ${describeSocket(socket)}`)
    return
  }
  const last = openSockets.pop()
  if (last !== socket) {
    openSockets[index] = last
    last.ext.openIndex = index
  }
  socket.ext.openIndex = -1
}

function armTimeout(socket, seconds) {
  socket.timeout(seconds)
  if (!socket.isClosed) socket.ext.timeout = { seconds, at: performance.now() }
}

/** onTimeout: a timeout was armed (and not cleared by adoption), and it is not early or very late. */
function checkTimeout(socket) {
  const ext = socket.ext
  const armed = ext.timeout
  ext.timeout = null
  if (armed === null) {
    stats.timeoutsNotArmed++
    violation(`onTimeout with no timeout armed (never set, already fired, or cleared by adoptSocket): ${describeSocket(socket)}`)
    return
  }
  const after = performance.now() - armed.at
  const late = after - armed.seconds * 1000
  stats.timeoutLateMs.min = Math.min(stats.timeoutLateMs.min, Math.round(late))
  stats.timeoutLateMs.max = Math.max(stats.timeoutLateMs.max, Math.round(late))
  // 5 ms for the clocks (the loop thread computes the deadline after the call).
  if (late < -5) violation(`early onTimeout: ${Math.round(after)} ms after timeout(${armed.seconds}) on ${describeSocket(socket)}`)
  if (late > TIMEOUT_LATE_MS) violation(`late onTimeout: ${Math.round(after)} ms after timeout(${armed.seconds}) on ${describeSocket(socket)}`)
}

function nextConnection() {
  if (stats.openedClients >= CLIENTS) {
    violation('nextConnection called when all clients had opened')
    return
  }
  const ext = newExt(true)
  const socket = http.connect('127.0.0.1', listener.port, { ext })
  everySocket[ext.id] = { socket, ext }
  stats.connectsStarted++
  if (socket.ext !== ext) violation('connect(..., { ext }) did not set socket.ext')
}

function closeIfDone() {
  if (stats.closedClients + stats.closedServers !== 2 * CLIENTS) return false
  if (stats.openedClients !== CLIENTS || stats.openedServers !== CLIENTS) {
    violation(`all ${2 * CLIENTS} closes counted with ${stats.openedClients} clients and ${stats.openedServers} servers opened`)
  }
  listener.close()
  listenerClosed = true
  stats.listenerClosedMs = elapsed()
  if (VERBOSE) process.stderr.write(`listener closed at ${elapsed()} ms\n`)
  return true
}

function handlers(name) {
  const context = contexts[name]
  context.onOpen((socket, isClient, remoteAddress) => {
    if (name === 'ws') {
      violation(`onOpen on the ws context (isClient ${isClient})`)
      return
    }
    if (isClient) {
      if (socket.ext?.isClient !== true) violation(`client onOpen without the ext given to connect(): ${JSON.stringify(socket.ext)}`)
    } else {
      if (socket.ext !== undefined) violation(`accepted socket has ext ${JSON.stringify(socket.ext)} in onOpen`)
      const ext = newExt(false)
      socket.ext = ext
      everySocket[ext.id] = { socket, ext }
    }
    if (!assumeState(socket, name, 'open')) return
    const ext = socket.ext
    if (ext.opens++ !== 0) violation(`second onOpen: ${describeSocket(socket)}`)
    if (ext.connectFailed) violation(`onOpen after onConnectError: ${describeSocket(socket)}`)
    ext.opened = true
    addOpen(socket)
    pairUp(socket, isClient)
    if (remoteAddress !== '127.0.0.1') violation(`onOpen remoteAddress ${remoteAddress}`)
    if (!socket.isEstablished) violation(`onOpen but isEstablished is false: ${describeSocket(socket)}`)
    if (isClient) {
      stats.openedClients++
      if (stats.openedClients === CLIENTS) stats.allClientsOpenedMs = elapsed()
      else nextConnection()
      if (VERBOSE && stats.openedClients % 500 === 0) process.stderr.write(`${stats.openedClients} clients at ${elapsed()} ms\n`)
    } else {
      stats.openedServers++
    }
    endOfCallback(socket)
  })
  context.onData((socket, data) => {
    if (!assumeState(socket, name, 'data')) return
    if (!Buffer.isBuffer(data) || data.length === 0) violation(`onData with ${Buffer.isBuffer(data) ? 'an empty Buffer' : typeof data}: ${describeSocket(socket)}`)
    else stats.bytesReceived += data.length
    endOfCallback(socket)
  })
  context.onWritable((socket) => {
    if (!assumeState(socket, name, 'writable')) return
    endOfCallback(socket)
  })
  context.onTimeout((socket) => {
    if (!assumeState(socket, name, 'timeout')) return
    if (!socket.isEstablished) violation(`onTimeout on a socket that is not established: ${describeSocket(socket)}`)
    checkTimeout(socket)
    // Shut down and the peer's FIN did not come: close (hammer_test.c's FIN_WAIT_2 escape).
    if (socket.isShutDown) socket.close()
    endOfCallback(socket, true)
  })
  context.onLongTimeout((socket) => {
    violation(`onLongTimeout (never set): ${describeSocket(socket)}`)
  })
  context.onEnd((socket) => {
    if (!assumeState(socket, name, 'end')) return
    socket.close()
    if (!socket.isClosed || !socket.ext.closed) violation(`close() in onEnd did not close: ${describeSocket(socket)}`)
    // Every operation on the closed socket must be a no-op.
    endOfCallback(socket)
  })
  context.onClose((socket, code, reason) => {
    if (!assumeState(socket, name, 'close')) return
    const ext = socket.ext
    ext.closed = true
    if (ext.closes === 0) removeOpen(socket)
    if (ext.closes++ !== 0) violation(`second onClose: ${describeSocket(socket)}`)
    if (!socket.isClosed) violation(`onClose but isClosed is false: ${describeSocket(socket)}`)
    if (typeof code !== 'number') violation(`onClose code ${code}`)
    if (code !== 0 && !(reason instanceof Error && typeof reason.code === 'string')) violation(`onClose code ${code} with reason ${reason}`)
    const codeName = code === 0 ? '0' : `${code} ${reason?.code}`
    stats.closeCodes[codeName] = (stats.closeCodes[codeName] ?? 0) + 1
    if (ext.isClient) stats.closedClients++
    else stats.closedServers++
    if (closeIfDone()) return
    // On a closed socket every operation must be a no-op (and must not fire anything).
    endOfCallback(socket)
    if (ext.closes !== 1) violation(`onClose ran ${ext.closes} times: ${describeSocket(socket)}`)
  })
  context.onConnectError((socket, code, error) => {
    if (name === 'ws') {
      violation(`onConnectError on the ws context: ${code} ${error?.code}`)
      return
    }
    stats.connectErrors++
    const ext = socket.ext
    if (ext?.pad !== PAD || !ext.isClient) violation(`onConnectError with ext ${JSON.stringify(ext)}`)
    else {
      if (ext.opened || ext.connectFailed) violation(`onConnectError on a socket that already opened or failed: ${describeSocket(socket)}`)
      ext.connectFailed = true
    }
    if (VERBOSE) process.stderr.write(`connect error ${code} ${error?.code}\n`)
    nextConnection()
  })
}

/** Final accounting, after the loop ended (or on the wall-clock limit). */
function finalChecks() {
  let neverClosed = 0
  let neverEnded = 0
  const stuck = []
  for (const entry of everySocket) {
    if (entry === undefined) continue
    const { socket, ext } = entry
    if (ext.connectFailed) {
      if (ext.opens !== 0 || ext.closes !== 0) violation(`failed connect with ${ext.opens} onOpen / ${ext.closes} onClose: ${describeSocket(socket)}`)
      continue
    }
    if (!ext.opened) {
      neverEnded++
      if (stuck.length < 20) stuck.push(`${describeSocket(socket)}: connect never completed`)
      continue
    }
    if (ext.opens !== 1 || ext.closes !== 1) {
      neverClosed++
      if (stuck.length < 20) {
        stuck.push(`${describeSocket(socket)}: ${ext.opens} onOpen, ${ext.closes} onClose, isClosed ${socket.isClosed}, isShutDown ${socket.isShutDown}, bufferedAmount ${socket.bufferedAmount}`)
      }
    }
    if (!socket.isClosed) violation(`isClosed false at the end: ${describeSocket(socket)}`)
  }
  if (neverClosed > 0) violation(`${neverClosed} opened sockets without exactly one onOpen and one onClose`)
  if (neverEnded > 0) violation(`${neverEnded} client connects that ended in neither onOpen nor onConnectError`)
  stats.stuckSockets = stuck
  const trackedClients = everySocket.filter((e) => e?.ext.isClient && e.ext.opened).length
  const trackedServers = everySocket.filter((e) => e && !e.ext.isClient).length
  if (trackedClients !== stats.openedClients || trackedServers !== stats.openedServers) {
    violation(`counts disagree: ${trackedClients}/${stats.openedClients} clients, ${trackedServers}/${stats.openedServers} servers`)
  }
}

function report() {
  stats.totalMs = elapsed()
  process.stdout.write(`${JSON.stringify(stats)}\n`)
}

async function main() {
  handlers('http')
  handlers('ws')
  process.stderr.write(`hammer: seed ${SEED}, ${CLIENTS} clients (repeat with: node test/hammer.js ${SEED})\n`)
  stats.fds.beforeListen = fdCount()
  listener = http.listen('127.0.0.1', 0)
  if (!(listener.port > 0)) throw new Error(`listen gave port ${listener.port}`)

  const wall = setTimeout(() => {
    stats.timedOut = true
    violation(
      listenerClosed
        ? 'wall-clock limit: the listener is closed but loop.run() did not resolve'
        : `wall-clock limit of ${WALL_MS} ms reached before all closes`,
    )
    finalChecks()
    report()
    process.exit(1)
  }, WALL_MS)
  wall.unref()

  if (VERBOSE) {
    setInterval(() => {
      const closed = stats.closedClients + stats.closedServers
      process.stderr.write(`${elapsed()} ms: ${stats.openedClients} clients opened, ${closed} closes, ${stats.events.timeout} timeouts\n`)
    }, 2000).unref()
  }
  nextConnection()
  await loop.run()
  runResolved = true
  stats.runResolvedMs = elapsed()
  clearTimeout(wall)
  if (!listenerClosed) violation('loop.run() resolved before the listener was closed')
  if (stats.closedClients + stats.closedServers !== 2 * CLIENTS) {
    violation(`loop.run() resolved after ${stats.closedClients + stats.closedServers} of ${2 * CLIENTS} closes`)
  }
  if (!listener.isClosed) violation('listener.isClosed is false after the run')
  finalChecks()
  stats.fds.afterRun = fdCount()
  if (stats.fds.afterRun > stats.fds.beforeListen + 2) {
    violation(`fd count ${stats.fds.afterRun} after the run, ${stats.fds.beforeListen} before listening`)
  }
  report()
  // Nothing is closed or stopped here: the process must now exit by itself (the spec checks it).
  process.exitCode = stats.violationCount === 0 ? 0 : 1
}

process.on('exit', () => {
  // A hint for the spec when something keeps the process alive: it then never gets here.
  if (VERBOSE) process.stderr.write(`exit after ${elapsed()} ms (run resolved: ${runResolved})\n`)
})

main().catch((err) => {
  violation(`main threw: ${err?.stack ?? err}`)
  report()
  process.exit(1)
})
