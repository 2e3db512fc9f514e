// TLS echo: round trips per second and server CPU time per round trip, bulk MB/s, and new
// connections per second (connect, full or resumed handshake, one message echoed, close) of a
// usockets-rs TLS echo server, next to a node:tls echo server (the baseline), a Bun one (the
// peer) and bench/limit-server --tls (the limit: what one core of plain Rust and rustls does)
// in the same run. "usockets-rs starttls" is the same server reached the STARTTLS way (it
// accepts in clear and upgrades every connection as it opens): upgraded sockets should move
// data as fast as sockets that began as TLS.
// bench/echo-harness.js says how it is measured.
//
// Every server presents test/fixtures/tls/server.pem; bench/loadgen checks it against
// ca.pem, and negotiates what it would with any server (TLS 1.3 with these three), with no
// session resumption but in the resumed-connect case (--resume: a returning client offers the
// ticket an earlier connection got; the row's resumedPct says how many handshakes resumed, and
// a note compares each server's CPU per resumed connection with its full one). The rows show how much of each Node.js server's CPU time its JS thread
// used: with usockets-rs all TLS work belongs on the loop thread, so during a bulk transfer
// the JS thread should use well under half (the bound, checked in the notes).
//
// Prints one JSON object per (case, server) on stdout; bench/run.js turns them into a table.
'use strict'

const path = require('node:path')

const {
  TLS_FIXTURES,
  bunServer,
  limitServer,
  measured,
  nodeServer,
  runMain,
  runScenario,
  serverCpuUsPerOp,
} = require('./echo-harness.js')

const TLS = ['--tls', '--ca', path.join(TLS_FIXTURES, 'ca.pem')]
/** The bound on the JS thread's share of the usockets-rs server's CPU in bulk transfer. */
const MAX_JS_THREAD_PCT = 50

/** Also run first and last on node:tls alone, to show how much the machine drifted. */
const NOISE_PROBE = {
  name: 'pingpong 64 B, 100 conns',
  args: ['pingpong', '--size', '64', '--connections', '100', ...TLS],
}

const STREAM_CASES = [
  { name: 'stream 64 KiB, 1 conn', args: ['stream', '--size', '65536', '--connections', '1', ...TLS] },
  { name: 'stream 64 KiB, 4 conns', args: ['stream', '--size', '65536', '--connections', '4', ...TLS] },
  // As many chunks unechoed as TCP lets the writer send (bench/tcp.js).
  {
    name: 'stream 64 KiB, 4 conns, unbounded',
    args: ['stream', '--size', '65536', '--connections', '4', '--pipeline', 'unbounded', ...TLS],
  },
]

const FULL_CONNECT = { name: 'connect 64 B, 10 conns', args: ['connect', '--size', '64', '--connections', '10', ...TLS] }
const RESUMED_CONNECT = {
  name: 'connect 64 B, 10 conns, resumed',
  args: ['connect', '--size', '64', '--connections', '10', ...TLS, '--resume'],
}
/** The bounds: a resumed handshake costs the server at most half a full one's CPU, and
 * usockets-rs makes at least twice node:tls's resumed connects per second. */
const MAX_RESUMED_CPU_SHARE = 0.5
const MIN_RESUMED_RATE_VS_NODE = 2

const CASES = [NOISE_PROBE, ...STREAM_CASES, FULL_CONNECT, RESUMED_CONNECT]

const NODE_TLS = nodeServer('node:tls', 'node-tls-echo.js')
const BUN = bunServer('bun', 'bun-echo.js', ['--tls'])
const USOCKETS = nodeServer('usockets-rs', 'usockets-echo.js', ['--tls'])
/** The same server reached by STARTTLS: it accepts in clear and upgrades each connection. */
const USOCKETS_STARTTLS = nodeServer('usockets-rs starttls', 'usockets-echo.js', ['--starttls'])
/** The same with borrowData: onData's Buffer is lent, its batch reused after the dispatch. */
const USOCKETS_BORROW = nodeServer('usockets-rs borrow', 'usockets-echo.js', ['--tls', '--borrow'])
const LIMIT = limitServer([
  ...['--tls', '--cert', path.join(TLS_FIXTURES, 'server.pem')],
  ...['--key', path.join(TLS_FIXTURES, 'server.key')],
])

async function main() {
  const runs = await runScenario({
    scenario: 'tls',
    cases: CASES,
    servers: [NODE_TLS, BUN, USOCKETS, USOCKETS_STARTTLS, USOCKETS_BORROW, LIMIT],
    baseline: NODE_TLS,
    peer: BUN,
    limit: LIMIT,
    noiseProbe: NOISE_PROBE,
    jsThreadShare: true,
  })
  for (const testCase of STREAM_CASES) {
    const run = runs[testCase.name]?.[USOCKETS.name]
    // Left out by BENCH_CASES, or no server to measure.
    if (run === undefined || run.unavailable !== undefined) continue
    const pct = (100 * run.serverMainThreadCpuNs) / run.serverCpuNs
    const verdict = pct < MAX_JS_THREAD_PCT ? 'meets' : 'MISSES'
    console.log(
      `usockets-rs JS thread in ${testCase.name}: ${pct.toFixed(1)}% of the server's CPU time ` +
        `(${verdict} the bound of < ${MAX_JS_THREAD_PCT}%)`,
    )
  }
  resumptionNotes(runs)
}

/** What a resumed handshake saves each server, and ours against node:tls's resumed rate. */
function resumptionNotes(runs) {
  const full = runs[FULL_CONNECT.name]
  const resumed = runs[RESUMED_CONNECT.name]
  if (full === undefined || resumed === undefined) return
  for (const server of [NODE_TLS, BUN, USOCKETS, USOCKETS_STARTTLS, LIMIT]) {
    const [fullRun, resumedRun] = [full[server.name], resumed[server.name]]
    if (!measured(fullRun) || !measured(resumedRun)) continue
    const share = serverCpuUsPerOp(resumedRun) / serverCpuUsPerOp(fullRun)
    const { handshakes, resumedHandshakes } = resumedRun.report
    const verdict = server === USOCKETS ? ` (${share <= MAX_RESUMED_CPU_SHARE ? 'meets' : 'MISSES'} the bound of <= ${MAX_RESUMED_CPU_SHARE})` : ''
    console.log(
      `resumed connect, ${server.name}: ${((100 * resumedHandshakes) / handshakes).toFixed(1)}% of handshakes resumed; ` +
        `server CPU per connection ${serverCpuUsPerOp(resumedRun).toFixed(1)} us vs ${serverCpuUsPerOp(fullRun).toFixed(1)} us full: ` +
        `${share.toFixed(2)}x${verdict}`,
    )
  }
  const [ours, node] = [resumed[USOCKETS.name], resumed[NODE_TLS.name]]
  if (measured(ours) && measured(node)) {
    const ratio = ours.report.opsPerSec / node.report.opsPerSec
    const verdict = ratio >= MIN_RESUMED_RATE_VS_NODE ? 'meets' : 'MISSES'
    console.log(
      `resumed connect: usockets-rs ${Math.round(ours.report.opsPerSec)}/s vs node:tls ${Math.round(node.report.opsPerSec)}/s: ` +
        `${ratio.toFixed(2)}x (${verdict} the bound of >= ${MIN_RESUMED_RATE_VS_NODE}x)`,
    )
  }
}

runMain(main)
