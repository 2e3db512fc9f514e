// TCP echo: messages per second and server CPU time per message of a usockets-rs echo server,
// next to a node:net echo server in the same run (usockets-rs is skipped until the TCP API
// exports SocketContext).
//
// The load comes from bench/loadgen, a native single-threaded client that checks every echoed
// byte. With two CPUs or more the server is pinned to CPU 0 and the load generator to CPU 1,
// so neither steals the other's time. The server's CPU time (all its threads) is read from
// /proc when the load generator reports that its measured window opens and closes, so the
// warm-up and start-up are not counted. So is the CPU time the rest of the machine used in
// that window (otherCpuPct): other processes competing for the two CPUs make a run noisy. It is
// approximate (/proc/stat and per-process times are accounted differently, so it can dip a few
// percent below zero).
//
// Over loopback, the CPU that sends a packet also runs the kernel's receive path for it, so
// part of each server's kernel work is charged to the load generator and the reverse; this
// affects both servers alike, so the ratios stay fair.
//
// Environment: BENCH_SECONDS (measured seconds per case, default 3), BENCH_WARMUP_SECONDS
// (default 1). Prints one JSON object per (case, server) on stdout; bench/run.js turns them
// into a table.
'use strict'

const { spawn, spawnSync } = require('node:child_process')
const { once } = require('node:events')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')

const { machineBusyNs, processCpuNs } = require('./cpu.js')

const LOADGEN_MANIFEST = path.join(__dirname, 'loadgen', 'Cargo.toml')
const LOADGEN = path.join(__dirname, 'loadgen', 'target', 'release', 'loadgen')
const MEASURE_SECONDS = secondsFromEnv('BENCH_SECONDS', 3)
const WARMUP_SECONDS = secondsFromEnv('BENCH_WARMUP_SECONDS', 1)
const SERVER_START_TIMEOUT_MS = 10_000
const PIN = os.availableParallelism() >= 2

/** Also run first and last on node:net alone, to show how much the machine drifted. */
const NOISE_PROBE = { name: 'pingpong 64 B, 100 conns', args: ['pingpong', '--size', '64', '--connections', '100'] }

const CASES = [
  { name: 'pingpong 64 B, 1 conn', args: ['pingpong', '--size', '64', '--connections', '1'] },
  { name: 'pingpong 64 B, 10 conns', args: ['pingpong', '--size', '64', '--connections', '10'] },
  NOISE_PROBE,
  {
    name: 'pingpong 64 B, 100 conns x 16',
    args: ['pingpong', '--size', '64', '--connections', '100', '--pipeline', '16'],
  },
  { name: 'stream 64 KiB, 4 conns', args: ['stream', '--size', '65536', '--connections', '4'] },
  { name: 'connect 64 B, 10 conns', args: ['connect', '--size', '64', '--connections', '10'] },
]

const NODE_NET = { name: 'node:net', script: 'node-net-echo.js' }
const USOCKETS = { name: 'usockets-rs', script: 'usockets-echo.js' }

function secondsFromEnv(name, fallback) {
  const text = process.env[name]
  if (text === undefined || text === '') return fallback
  const seconds = Number(text)
  if (!(seconds >= 0)) throw new RangeError(`${name} must be a number of seconds, got ${JSON.stringify(text)}`)
  return seconds
}

/** Why the usockets-rs server cannot run yet, or null if it can. */
function usocketsUnavailable() {
  try {
    const { SocketContext } = require('..')
    return typeof SocketContext === 'function' ? null : 'SocketContext is not exported yet (the TCP API has not landed)'
  } catch (err) {
    return `the addon does not load: ${err.message}`
  }
}

/** Builds bench/loadgen, showing cargo's output only if the build fails. */
function buildLoadgen() {
  const build = spawnSync('cargo', ['build', '--release', '--manifest-path', LOADGEN_MANIFEST], {
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
  })
  if (build.status === 0) return
  process.stderr.write(`${build.stdout ?? ''}${build.stderr ?? ''}`)
  throw new Error(`building bench/loadgen failed: ${build.error ?? `exit code ${build.status}`}`)
}

/** `command args` to spawn, pinned to `cpu` when the machine has CPUs to spare. */
function onCpu(cpu, command, args) {
  return PIN ? ['taskset', ['-c', String(cpu), command, ...args]] : [command, args]
}

/** Starts an echo server on an ephemeral port; resolves once it prints its port. */
function startServer(server) {
  const [command, args] = onCpu(0, process.execPath, [path.join(__dirname, 'servers', server.script), '0'])
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    const fail = (err) => {
      clearTimeout(timer)
      child.kill()
      reject(err)
    }
    const onExit = (code, signal) =>
      fail(new Error(`the ${server.name} server exited before listening (exit code ${code}, signal ${signal})`))
    const timer = setTimeout(
      () => fail(new Error(`the ${server.name} server did not print its port within ${SERVER_START_TIMEOUT_MS} ms`)),
      SERVER_START_TIMEOUT_MS,
    )
    child.once('error', fail)
    child.once('exit', onExit)
    readline.createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer)
      child.off('error', fail)
      child.off('exit', onExit)
      resolve({ child, port: JSON.parse(line).port })
    })
  })
}

async function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill()
  await exited
}

/**
 * Runs the load generator against `port`, sampling CPU time when the measured window opens and
 * closes: of process `serverPid`, of the load generator (near 100% it, not the server, would be
 * the limit) and of the whole machine. Rejects if the load generator fails, which it does if
 * any echoed byte was wrong.
 */
async function runLoadgen(caseArgs, port, serverPid) {
  const args = [
    ...caseArgs,
    ...['--port', String(port), '--warmup', String(WARMUP_SECONDS), '--duration', String(MEASURE_SECONDS)],
  ]
  const [command, commandArgs] = onCpu(1, LOADGEN, args)
  const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk))
  const marks = {}
  readline.createInterface({ input: child.stderr }).on('line', (line) => {
    if (line === 'measure-start' || line === 'measure-end') {
      marks[line] = {
        wallNs: process.hrtime.bigint(),
        serverCpuNs: processCpuNs(serverPid),
        loadgenCpuNs: processCpuNs(child.pid),
        machineBusyNs: machineBusyNs(),
      }
    } else {
      process.stderr.write(`${line}\n`)
    }
  })
  const [code, signal] = await once(child, 'close')
  if (code !== 0) throw new Error(`loadgen ${args.join(' ')} failed (exit code ${code}, signal ${signal})`)
  const start = marks['measure-start']
  const end = marks['measure-end']
  return {
    report: JSON.parse(stdout),
    wallNs: Number(end.wallNs - start.wallNs),
    serverCpuNs: end.serverCpuNs - start.serverCpuNs,
    loadgenCpuNs: end.loadgenCpuNs - start.loadgenCpuNs,
    machineBusyNs: end.machineBusyNs - start.machineBusyNs,
  }
}

/** One case against one server: a fresh server process, so no case inherits another's state. */
async function measure(testCase, server) {
  process.stderr.write(`tcp: ${testCase.name} on ${server.name}\n`)
  const { child, port } = await startServer(server)
  try {
    return await runLoadgen(testCase.args, port, child.pid)
  } finally {
    await stopServer(child)
  }
}

function serverCpuUsPerOp(run) {
  return run.serverCpuNs / 1e3 / run.report.ops
}

/** A result row; `baseline` is node:net's run of the same case, for the ratios. */
function row(testCase, server, run, baseline) {
  const { report } = run
  const result = {
    case: testCase.name,
    server: server.name,
    opsPerSec: report.opsPerSec,
    MBps: report.bytesPerSec / 1e6,
    p50Us: report.p50Us,
    p99Us: report.p99Us,
    serverCpuUsPerOp: serverCpuUsPerOp(run),
    serverCpuPct: (100 * run.serverCpuNs) / run.wallNs,
    loadgenCpuPct: (100 * run.loadgenCpuNs) / run.wallNs,
    otherCpuPct: (100 * (run.machineBusyNs - run.serverCpuNs - run.loadgenCpuNs)) / run.wallNs,
    errors: report.errors,
  }
  if (baseline !== undefined) {
    result.opsVsNode = report.opsPerSec / baseline.report.opsPerSec
    result.cpuPerOpVsNode = serverCpuUsPerOp(run) / serverCpuUsPerOp(baseline)
  }
  return result
}

/** How far apart repeated runs of one case landed: (max - min) / mean. */
function spread(values) {
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length
  return (Math.max(...values) - Math.min(...values)) / mean
}

async function main() {
  buildLoadgen()
  const unavailable = usocketsUnavailable()
  const servers = unavailable === null ? [NODE_NET, USOCKETS] : [NODE_NET]
  const noiseRuns = [await measure(NOISE_PROBE, NODE_NET)]
  let rowsWithErrors = 0
  for (const testCase of CASES) {
    let baseline
    for (const server of servers) {
      const run = await measure(testCase, server)
      console.log(JSON.stringify(row(testCase, server, run, baseline)))
      if (run.report.errors > 0) rowsWithErrors++
      if (server === NODE_NET) baseline = run
      if (server === NODE_NET && testCase === NOISE_PROBE) noiseRuns.push(run)
    }
  }
  noiseRuns.push(await measure(NOISE_PROBE, NODE_NET))
  const opsPerSec = noiseRuns.map((run) => Math.round(run.report.opsPerSec))
  console.log(
    `noise: node:net ${NOISE_PROBE.name} at the start, in the table and at the end: ` +
      `${opsPerSec.join(', ')} ops/s, spread ${(100 * spread(opsPerSec)).toFixed(1)}% of the mean`,
  )
  console.log(PIN ? 'pinned: servers on CPU 0, loadgen on CPU 1' : 'not pinned: fewer than 2 CPUs')
  if (unavailable !== null) console.log(`usockets-rs: skipped, ${unavailable}`)
  // Connections failing under a load this light point at a server bug, not noise.
  if (rowsWithErrors > 0) {
    console.log(`errors: ${rowsWithErrors} row(s) had failed connections (see the errors column)`)
    process.exitCode = 1
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
