// The TCP echo cases (bench/loadgen arguments) that bench/tcp.js runs and bench/workers.js
// repeats against one and two worker threads.
'use strict'

/** Run first and last on node:net alone too, to show how much the machine drifted. */
const NOISE_PROBE = { name: 'pingpong 64 B, 100 conns', args: ['pingpong', '--size', '64', '--connections', '100'] }
const PIPELINED = {
  name: 'pingpong 64 B, 100 conns x 16',
  args: ['pingpong', '--size', '64', '--connections', '100', '--pipeline', '16'],
}
const CONNECT = { name: 'connect 64 B, 10 conns', args: ['connect', '--size', '64', '--connections', '10'] }

module.exports = { NOISE_PROBE, PIPELINED, CONNECT }
