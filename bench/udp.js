// UDP echo: echoed datagrams per second and server CPU time per datagram of a usockets-rs
// UdpSocket echo server, next to node:dgram (the baseline), Bun (`Bun.udpSocket`, the peer) and
// `limit-server --udp` (recvmmsg / sendmmsg on one thread: the limit) in the same run.
// bench/echo-harness.js says how it is measured; `loadgen udp` (bench/loadgen/src/udp.rs) drives
// the flows, checks every echoed byte and counts a datagram that does not come back as lost
// (the lossPct column): UDP servers drop what they cannot take, and a rate that hides its
// losses would flatter them.
'use strict'

const { bunServer, limitServer, nodeServer, runMain, runScenario } = require('./echo-harness.js')

const udp = (size, flows, pipeline) => ['udp', '--size', String(size), '--flows', String(flows), '--pipeline', String(pipeline)]

/** Also run first and last on node:dgram alone, to show how much the machine drifted. */
const NOISE_PROBE = { name: '64 B, 16 flows x 4', args: udp(64, 16, 4) }
const CASES = [
  { name: '64 B, 1 flow x 1', args: udp(64, 1, 1) },
  NOISE_PROBE,
  { name: '1200 B, 16 flows x 4', args: udp(1200, 16, 4) },
]

const NODE_DGRAM = nodeServer('node:dgram', 'node-dgram-echo.js')
const BUN = bunServer('bun', 'bun-udp-echo.js')
const LIMIT = limitServer(['--udp'])

runMain(() =>
  runScenario({
    scenario: 'udp',
    cases: CASES,
    servers: [
      NODE_DGRAM,
      BUN,
      nodeServer('usockets-rs', 'usockets-udp-echo.js'),
      nodeServer('usockets-rs borrow', 'usockets-udp-echo.js', ['--borrow']),
      LIMIT,
    ],
    baseline: NODE_DGRAM,
    peer: BUN,
    limit: LIMIT,
    noiseProbe: NOISE_PROBE,
  }),
)
