import net from 'node:net'
import path from 'node:path'

import test, { type ExecutionContext } from 'ava'

import { keyCert, ourTlsClient } from './helpers/interop'
import { Tracker, newContext, randomBytes } from './helpers/net'
import { fixture } from './helpers/tls'
import { jsonSummary, runNodeProcess } from './helpers/util'

// test/tls-stress.js: TLS under load, in a Node process of its own (clean fd counts and RSS, a
// crash shows as a failed exit), one phase per test; see the header of that file for what each
// phase does and checks. The handshake timeout of a silent client is checked here, in-process.

const SCRIPT = path.join(__dirname, '..', 'test', 'tls-stress.js')
const MiB = 1024 * 1024
const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`

/** Runs the given phases of the script; its summary, or undefined (the test then failed). */
async function runPhases(t: ExecutionContext, ...phases: string[]): Promise<any> {
  const run = await runNodeProcess(['--expose-gc', SCRIPT, ...phases], { timeoutMs: 60_000, exitAfterFirstLineMs: 10_000 })
  const summary = jsonSummary(t, run)
  if (summary === undefined) return undefined
  t.false(run.timedOut, `tls-stress.js ${phases.join(' ')} hung`)
  t.is(run.signal, null, `killed by ${run.signal}: ${run.stderr}`)
  t.is(run.killedBy, null)
  if (summary.ok) t.is(run.code, 0, run.stderr)
  else t.is(run.code, 1, 'the script reported failures but exited 0')
  t.is(run.stderr, '', 'the script wrote to stderr (an uncaught exception in a callback?)')
  return summary
}

/**
 * What a stall means (for assertion messages). Causes seen so far: a CheckWritable that reached
 * the loop after the queue had drained (TLS sockets then had nothing that reported the drain;
 * fixed in 33fa574), and, in src/event_loop/mod.rs `send()`, two separate readings of
 * `buffered_amount()` (one decides whether to ask for the drain report, the later one is what
 * JavaScript turns into `false`) while the loop thread moves bytes from plaintext to ciphertext.
 */
const STALL_BUG =
  'a TLS socket whose send() returned false got no onWritable although its bufferedAmount went to 0 ' +
  '(the drain report was never asked for, or was asked for after the drain and lost)'

test.serial('8 MiB of random data echoed through our TLS server arrive intact (send() / onWritable on both sides)', async (t) => {
  const summary = await runPhases(t, 'echo')
  const echo = summary?.phases?.echo
  if (echo === undefined) return t.fail(`no echo phase: ${JSON.stringify(summary)}`)
  t.log(
    `${mib(echo.bytes)} echoed in ${echo.seconds} s (${echo.mibPerSecond} MiB/s; ${echo.stalledMs + echo.serverStalledMs} ms of it ` +
      `stalled, ${echo.mibPerSecondExcludingStalls} MiB/s without); client: ${echo.sendFalses} send() false, ${echo.writableStalls} stalls; server: ${echo.serverPauses} pauses, ` +
      `${echo.serverWritableStalls} stalls`,
  )
  t.is(echo.bytes, echo.expectedBytes)
  t.true(echo.intact, 'the sha256 of the echo differs from what was sent')
  t.true(echo.sendFalses > 0, 'send() never returned false: the onWritable protocol was not exercised')
  t.is(echo.writableStalls, 0, `client: ${STALL_BUG}`)
  t.is(echo.serverWritableStalls, 0, `server: ${STALL_BUG}`)
  t.deepEqual(echo.failures, [])
})

test.serial('8 MiB of random data echoed by a node:tls server arrive intact', async (t) => {
  const summary = await runPhases(t, 'echo-node')
  const echo = summary?.phases?.['echo-node']
  if (echo === undefined) return t.fail(`no echo-node phase: ${JSON.stringify(summary)}`)
  t.log(`${mib(echo.bytes)} echoed in ${echo.seconds} s (${echo.mibPerSecond} MiB/s); ${echo.sendFalses} send() false, ${echo.writableStalls} stalls`)
  t.is(echo.bytes, echo.expectedBytes)
  t.true(echo.intact, 'the sha256 of the echo differs from what was sent')
  t.true(echo.sendFalses > 0, 'send() never returned false: the onWritable protocol was not exercised')
  t.is(echo.writableStalls, 0, STALL_BUG)
  t.deepEqual(echo.failures, [])
})

test.serial('1,000 TLS handshakes (10 chains of 100): fds come back, RSS growth stays bounded', async (t) => {
  const summary = await runPhases(t, 'handshakes')
  const h = summary?.phases?.handshakes
  if (h === undefined) return t.fail(`no handshakes phase: ${JSON.stringify(summary)}`)
  t.log(
    `${h.handshakes} handshakes in ${h.seconds} s: ${h.handshakesPerSecond}/s; fds ${h.fdsBefore} -> ${h.fdsAfter} ` +
      `(${h.fdsAfterLoopClose} after closing the loop, ${h.fdsBeforeLoop} before it); RSS +${mib(h.rssDelta)} ` +
      `(limit +${mib(h.rssLimitDelta)}; V8 heap total +${mib(h.heapTotalDelta)}, used +${mib(h.heapUsedDelta)}, ` +
      `outside the V8 heap +${mib(h.nonHeapRssDelta)})`,
  )
  const total = h.handshakes + h.warmup
  t.is(h.clientOpens, total, `connect errors: ${JSON.stringify(h.connectErrors)}`)
  t.is(h.echoes, total)
  t.is(h.serverOpens, total)
  t.is(h.serverCloses, total)
  t.deepEqual(h.connectErrors, {})
  t.true(h.fdsAfter <= h.fdsBefore + h.fdSlack, `fds: ${h.fdsBefore} before, ${h.fdsAfter} after`)
  t.true(h.fdsAfterLoopClose <= h.fdsBeforeLoop + h.fdSlack, `fds: ${h.fdsBeforeLoop} before the loop, ${h.fdsAfterLoopClose} after closing it`)
  t.true(h.rssDelta <= h.rssLimitDelta, `RSS grew by ${mib(h.rssDelta)} (limit ${mib(h.rssLimitDelta)})`)
  t.deepEqual(h.failures, [])
})

test('garbage flood: 200 raw TCP clients sending random bytes are closed, 20 TLS clients echo meanwhile, the server keeps serving', async (t) => {
  const summary = await runPhases(t, 'flood')
  const f = summary?.phases?.flood
  if (f === undefined) return t.fail(`no flood phase: ${JSON.stringify(summary)}`)
  t.log(
    `${f.garbageClosed} of ${f.garbageConnections} garbage connections closed by the server (median ${f.garbageCloseMedianMs} ms, ` +
      `max ${f.garbageCloseMaxMs} ms; ${f.garbageBytesReceived} bytes of alerts; errors ${JSON.stringify(f.garbageErrors)}); ` +
      `${f.tlsClientsComplete} of ${f.tlsClients} TLS clients complete; whole flood ${f.floodSeconds} s`,
  )
  t.is(f.garbageConnected, f.garbageConnections)
  t.is(f.garbageClosed, f.garbageConnections, 'garbage connections left open by the server')
  t.true(f.garbageCloseMaxMs < 5000, `a garbage connection was closed only after ${f.garbageCloseMaxMs} ms (the handshake timeout, not the bad bytes)`)
  t.is(f.tlsClientsComplete, f.tlsClients)
  t.true(f.servesAfter, 'a TLS client after the flood did not get its echo')
  t.is(f.serverOpens, f.tlsClients + 1, 'the server onOpen count is not the TLS clients: garbage opened, or a client did not')
  t.is(f.serverCloses, f.serverOpens)
  t.deepEqual(f.failures, [])
})

test('send() returning false is always followed by onWritable: TLS (and plain TCP as the control)', async (t) => {
  const summary = await runPhases(t, 'writable')
  const w = summary?.phases?.writable
  if (w === undefined) return t.fail(`no writable phase: ${JSON.stringify(summary)}`)
  t.log(
    `TLS: ${w.tls.rounds} rounds, ${w.tls.sendFalses} false, ${w.tls.stalls} stalls (${w.tls.seconds} s); ` +
      `plain TCP: ${w.plain.rounds} rounds, ${w.plain.sendFalses} false, ${w.plain.stalls} stalls (${w.plain.seconds} s)`,
  )
  t.true(w.tls.sendFalses > 100, `TLS send() returned false only ${w.tls.sendFalses} times: the race was not exercised`)
  t.is(w.plain.stalls, 0, `plain TCP: a send() false without onWritable (the harness or the plain path is broken)`)
  t.is(w.tls.stalls, 0, `TLS: ${w.tls.stalls} of ${w.tls.sendFalses} send() falses got no onWritable: ${STALL_BUG}`)
  t.deepEqual(w.failures, [])
})

// --- the handshake timeout ------------------------------------------------------------------

test('a raw TCP client that never completes a handshake is dropped after the TLS handshake timeout, unseen by JavaScript', async (t) => {
  t.timeout(30_000)
  const { ctx } = newContext(t, { tls: keyCert('server') })
  const tracker = new Tracker(ctx, { data: (socket, data) => socket.send(data) })
  const listener = ctx.listen('127.0.0.1', 0)

  // One client sends nothing at all; another sends the first bytes of a ClientHello and stops.
  const silent = (prefix: Buffer | undefined) =>
    new Promise<{ ms: number; received: number; error?: string }>((resolve) => {
      const socket = net.connect(listener.port, '127.0.0.1')
      t.teardown(() => {
        socket.destroy()
      })
      let connectedAt = 0
      let received = 0
      let error: string | undefined
      socket.on('connect', () => {
        connectedAt = performance.now()
        if (prefix !== undefined) socket.write(prefix)
      })
      socket.on('data', (chunk: Buffer) => (received += chunk.length))
      socket.on('error', (err: NodeJS.ErrnoException) => (error = err.code))
      socket.on('close', () => resolve({ ms: performance.now() - connectedAt, received, error }))
    })
  const nothing = silent(undefined)
  const partial = silent(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]))

  // Meanwhile the server serves real clients.
  await new Promise((resolve) => setTimeout(resolve, 500))
  const payload = randomBytes(16 * 1024)
  const meanwhile = await ourTlsClient(t, { ca: fixture('ca.pem') }, '127.0.0.1', listener.port, payload)
  t.true(meanwhile.complete && meanwhile.received.equals(payload), 'a TLS client next to the silent ones did not get its echo')

  const [a, b] = await Promise.all([nothing, partial])
  t.log(`silent client dropped after ${Math.round(a.ms)} ms (${a.error ?? 'orderly'}), partial ClientHello after ${Math.round(b.ms)} ms (${b.error ?? 'orderly'})`)
  for (const [what, r] of [['silent', a], ['partial ClientHello', b]] as const) {
    // 10 s after the connection, plus at most one 4 s timeout tick.
    t.true(r.ms >= 9000 && r.ms <= 16_000, `${what} client closed after ${Math.round(r.ms)} ms, not between 9 and 16 s`)
  }
  t.is(a.received, 0, 'the silent client got bytes')
  // JavaScript heard only of the real client: one onOpen, one onClose.
  t.is(tracker.count('open'), 1, JSON.stringify(tracker.log.map((e) => e.event)))
  t.is(tracker.count('close'), 1, JSON.stringify(tracker.log.map((e) => e.event)))
  tracker.assertLifecycle(t)
})
