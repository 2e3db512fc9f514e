// TCP echo: messages per second and server CPU time per message of a usockets-rs echo server,
// next to a node:net echo server (the baseline), a Bun echo server (the peer) and
// bench/limit-server (the limit: what one core of plain Rust does) in the same run.
// bench/echo-harness.js says how it is measured.
//
// The load comes from bench/loadgen, a native single-threaded client that checks every echoed
// byte. Prints one JSON object per (case, server) on stdout; bench/run.js turns them into a
// table.
'use strict'

const { bunServer, limitServer, nodeServer, runMain, runScenario } = require('./echo-harness.js')
const { NOISE_PROBE, PIPELINED, CONNECT } = require('./tcp-cases.js')

const CASES = [
  { name: 'pingpong 64 B, 1 conn', args: ['pingpong', '--size', '64', '--connections', '1'] },
  { name: 'pingpong 64 B, 10 conns', args: ['pingpong', '--size', '64', '--connections', '10'] },
  NOISE_PROBE,
  PIPELINED,
  // At most 16 chunks unechoed per connection, and as many as TCP lets the writer send (it reads
  // the echo back concurrently but never waits for it): what a proxy or file transfer does.
  { name: 'stream 64 KiB, 4 conns', args: ['stream', '--size', '65536', '--connections', '4'] },
  {
    name: 'stream 64 KiB, 4 conns, unbounded',
    args: ['stream', '--size', '65536', '--connections', '4', '--pipeline', 'unbounded'],
  },
  CONNECT,
]

const NODE_NET = nodeServer('node:net', 'node-net-echo.js')
const BUN = bunServer('bun', 'bun-echo.js')
const LIMIT = limitServer()

runMain(() =>
  runScenario({
    scenario: 'tcp',
    cases: CASES,
    servers: [
      NODE_NET,
      BUN,
      nodeServer('usockets-rs', 'usockets-echo.js'),
      // The same with the loop thread always driving (README, "Who runs the loop").
      nodeServer('usockets-rs thread', 'usockets-echo.js', ['--thread-only']),
      // The same with the loop polling for 50 µs after each delivery: latency for CPU.
      nodeServer('usockets-rs spin', 'usockets-echo.js', ['--spin-us', '50']),
      // The same with borrowData: onData's Buffer is lent, its batch reused after the dispatch.
      nodeServer('usockets-rs borrow', 'usockets-echo.js', ['--borrow']),
      LIMIT,
    ],
    baseline: NODE_NET,
    peer: BUN,
    limit: LIMIT,
    noiseProbe: NOISE_PROBE,
  }),
)
