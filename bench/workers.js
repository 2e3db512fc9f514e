// One loop per core: the same load against a usockets-rs echo server with 1 worker thread and
// with 2 (bench/servers/usockets-echo.js --workers N: each worker its own loop, all on one
// port through SO_REUSEPORT, as examples/cluster.mjs runs), beside node:net, Bun and
// bench/limit-server in the same run. The one-worker server and the others are pinned to CPU
// 0; the two-worker server may use CPUs 0 and 1, and so shares CPU 1 with the load generator:
// on a 2-CPU machine its rate says little, its server CPU per operation and the spread of
// connections over the workers (printed after the table) are what to read.
'use strict'

const { bunServer, limitServer, nodeServer, runMain, runScenario } = require('./echo-harness.js')

const { NOISE_PROBE, PIPELINED, CONNECT } = require('./tcp-cases.js')

const CASES = [NOISE_PROBE, PIPELINED, CONNECT]

const NODE_NET = nodeServer('node:net', 'node-net-echo.js')
const BUN = bunServer('bun', 'bun-echo.js')
const LIMIT = limitServer()
const ONE = nodeServer('usockets-rs x1 worker', 'usockets-echo.js', ['--workers', '1'])
const TWO = { ...nodeServer('usockets-rs x2 workers', 'usockets-echo.js', ['--workers', '2']), cpus: '0,1' }

async function main() {
  const runs = await runScenario({
    scenario: 'workers',
    cases: CASES,
    servers: [NODE_NET, BUN, ONE, TWO, LIMIT],
    baseline: NODE_NET,
    peer: BUN,
    limit: LIMIT,
    noiseProbe: NOISE_PROBE,
  })
  for (const [caseName, caseRuns] of Object.entries(runs)) {
    const run = caseRuns[TWO.name]
    const counts = run?.serverReports?.find((report) => report.acceptedPerWorker)?.acceptedPerWorker
    if (counts === undefined) continue
    const total = counts.reduce((sum, count) => sum + count, 0)
    const shares = counts.map((count) => `${((100 * count) / total).toFixed(0)}%`).join(' / ')
    console.log(`spread over 2 workers, ${caseName}: ${counts.join(' / ')} connections accepted (${shares})`)
  }
  console.log(
    'x2 workers: pinned to CPUs 0 and 1, the load generator to CPU 1 (2 CPUs here): the second worker and ' +
      'the load generator take turns on CPU 1, so compare server CPU per operation, not rates',
  )
}

runMain(main)
