// What bench/tcp.js and bench/tls.js share: echo servers in child processes, the native load
// generator (bench/loadgen) against them, the servers' CPU time over the measured window, and
// one result row per (case, server) with its ratios to the baseline (node:net or node:tls), to
// the peer (Bun) and to the limit (bench/limit-server, one core's worth of plain Rust).
//
// With two CPUs or more the server is pinned to CPU 0 (or the CPUs its `cpus` lists) and the
// load generator to CPU 1, so neither steals the other's time. The server's CPU time (all its threads) is read from /proc
// when the load generator reports that its measured window opens and closes, so the warm-up
// and start-up are not counted. So is the CPU time the rest of the machine used in that window
// (otherCpuPct): other processes competing for the two CPUs make a run noisy. It is
// approximate (/proc/stat and per-process times are accounted differently, so it can dip a
// few percent below zero).
//
// Over loopback, the CPU that sends a packet also runs the kernel's receive path for it, so
// part of each server's kernel work is charged to the load generator and the reverse; this
// affects every server alike, so the ratios stay fair.
//
// Environment: BENCH_SECONDS (measured seconds per case, default 3), BENCH_WARMUP_SECONDS
// (default 1), BENCH_CASES (comma-separated parts of case names: only the cases that contain
// one run, e.g. BENCH_CASES=stream).
'use strict'

const { spawn, spawnSync } = require('node:child_process')
const { once } = require('node:events')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')

const { machineBusyNs, mainThreadCpuNs, processCpuNs } = require('./cpu.js')

/** The native tools, each its own cargo project, built before a scenario runs. */
const CRATES = {
  loadgen: path.join(__dirname, 'loadgen'),
  limitServer: path.join(__dirname, 'limit-server'),
}
const LOADGEN = path.join(CRATES.loadgen, 'target', 'release', 'loadgen')
const LIMIT_SERVER = path.join(CRATES.limitServer, 'target', 'release', 'limit-server')
/** Certificates the TLS servers present and the load generator checks. */
const TLS_FIXTURES = path.join(__dirname, '..', 'test', 'fixtures', 'tls')

const MEASURE_SECONDS = secondsFromEnv('BENCH_SECONDS', 3)
const WARMUP_SECONDS = secondsFromEnv('BENCH_WARMUP_SECONDS', 1)
const SERVER_START_TIMEOUT_MS = 10_000
/** Load generator CPU use (% of one CPU) from which it, not the server, was the bottleneck. */
const LOADGEN_BOUND_PCT = 95
/** CPU use of other processes (% of one CPU) from which a run competed for its CPUs. */
const OTHER_BUSY_PCT = 20
const PIN = os.availableParallelism() >= 2
const CASE_FILTER = (process.env.BENCH_CASES ?? '').split(',').filter((part) => part !== '')

function secondsFromEnv(name, fallback) {
  const text = process.env[name]
  if (text === undefined || text === '') return fallback
  const seconds = Number(text)
  if (!(seconds >= 0)) throw new RangeError(`${name} must be a number of seconds, got ${JSON.stringify(text)}`)
  return seconds
}

/** The Bun release the peer column runs (installed from the npm registry when missing). */
const BUN_VERSION = '1.4.5'

/**
 * The path of the Bun binary of the `bun` npm package, installed with `npm install --no-save`
 * when it is missing or another version; throws why if that fails.
 */
function bunBinary() {
  const root = path.join(__dirname, '..')
  const manifest = () => {
    try {
      return require.resolve('bun/package.json', { paths: [root] })
    } catch {
      return null
    }
  }
  const installed = manifest()
  // A fresh read, not require(): an install below must not see a cached older manifest.
  const version = (file) => JSON.parse(require('node:fs').readFileSync(file, 'utf8')).version
  if (installed === null || version(installed) !== BUN_VERSION) {
    process.stderr.write(`installing bun@${BUN_VERSION} for the benchmark (npm install --no-save)\n`)
    const install = spawnSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', `bun@${BUN_VERSION}`], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
    })
    if (install.status !== 0) {
      throw new Error(`npm install --no-save bun@${BUN_VERSION} failed: ${install.error ?? install.stderr.trim().split('\n').at(-1)}`)
    }
  }
  const file = manifest()
  if (file === null) throw new Error(`bun@${BUN_VERSION} did not install`)
  return path.join(path.dirname(file), 'bin', 'bun.exe')
}

/**
 * A server that is a script in bench/servers/ run by Bun; unavailable (its rows say why) if
 * Bun cannot be installed.
 */
function bunServer(name, script, args = []) {
  const server = { name, args: [path.join(__dirname, 'servers', script), '0', ...args], js: true }
  try {
    return { ...server, command: bunBinary() }
  } catch (err) {
    return { ...server, unavailable: err.message }
  }
}

/** A server that is a script in bench/servers/, run by this Node.js. */
function nodeServer(name, script, args = []) {
  return { name, command: process.execPath, args: [path.join(__dirname, 'servers', script), '0', ...args], js: true }
}

/** bench/limit-server, plain or with `--tls ...` in `args`. */
function limitServer(args = []) {
  return { name: 'limit', command: LIMIT_SERVER, args: [...args, '0'], js: false }
}

/** Builds the native tools, showing cargo's output only if a build fails. */
function buildTools() {
  for (const [name, dir] of Object.entries(CRATES)) {
    const build = spawnSync('cargo', ['build', '--release', '--manifest-path', path.join(dir, 'Cargo.toml')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
    })
    if (build.status === 0) continue
    process.stderr.write(`${build.stdout ?? ''}${build.stderr ?? ''}`)
    const why = build.error ?? `exit code ${build.status}`
    throw new Error(`building bench/${path.basename(dir)} (${name}) failed: ${why}`)
  }
}

/** `command args` to spawn, pinned to `cpu` (a CPU list: 0, or '0,1') when the machine has CPUs to spare. */
function onCpu(cpu, command, args) {
  return PIN ? ['taskset', ['-c', String(cpu), command, ...args]] : [command, args]
}

/**
 * The gist of what a server that failed to start wrote to stderr: a Node.js error's message
 * line and code (`Error: ... (ERR_TLS_UNAVAILABLE)`), else its last line.
 */
function startFailureReason(stderr) {
  const lines = stderr.split('\n').map((line) => line.trim()).filter((line) => line !== '')
  const message = lines.find((line) => /^\w*Error\b/.test(line)) ?? lines.at(-1)
  const code = /code: '([A-Z0-9_]+)'/.exec(stderr)?.[1]
  if (message === undefined) return null
  return code !== undefined && !message.includes(code) ? `${message} (${code})` : message
}

/**
 * Starts an echo server on an ephemeral port; resolves once it prints its port. Its stderr
 * is kept until then, to say why if it never does, and passed through after.
 */
function startServer(server) {
  const [command, args] = onCpu(server.cpus ?? 0, server.command, server.args)
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  const keepStderr = (chunk) => (stderr += chunk)
  child.stderr.setEncoding('utf8').on('data', keepStderr)
  return new Promise((resolve, reject) => {
    const fail = (why) => {
      clearTimeout(timer)
      child.kill()
      const reason = startFailureReason(stderr)
      reject(new Error(`the ${server.name} server ${why}${reason === null ? '' : `: ${reason}`}`))
    }
    // 'close', not 'exit': by then all of its stderr has been read.
    const onClose = (code, signal) => fail(`exited before listening (exit code ${code}, signal ${signal})`)
    const onError = (err) => fail(`could not be started (${err.message})`)
    const timer = setTimeout(
      () => fail(`did not print its port within ${SERVER_START_TIMEOUT_MS} ms`),
      SERVER_START_TIMEOUT_MS,
    )
    child.once('error', onError)
    child.once('close', onClose)
    // The first line is the port; later ones (JSON) are what the server reports, kept for the
    // scenario (the workers' share of connections).
    const reports = []
    const lines = readline.createInterface({ input: child.stdout })
    lines.once('line', (line) => {
      clearTimeout(timer)
      child.off('error', onError)
      child.off('close', onClose)
      child.stderr.off('data', keepStderr)
      process.stderr.write(stderr)
      child.stderr.pipe(process.stderr)
      lines.on('line', (report) => reports.push(JSON.parse(report)))
      resolve({ child, port: JSON.parse(line).port, reports })
    })
  })
}

/** SIGTERM, and waits until its stdout is read to the end (its last reports). */
async function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const closed = once(child, 'close')
  child.kill()
  await closed
}

/** CPU times at one instant; two of them bound the measured window. */
function sample(serverPid, loadgenPid) {
  return {
    wallNs: process.hrtime.bigint(),
    serverCpuNs: processCpuNs(serverPid),
    serverMainThreadCpuNs: mainThreadCpuNs(serverPid),
    loadgenCpuNs: processCpuNs(loadgenPid),
    machineBusyNs: machineBusyNs(),
  }
}

/**
 * Runs the load generator against `port`, sampling CPU time when the measured window opens and
 * closes: of process `serverPid` and its main thread, of the load generator (near 100% it, not
 * the server, would be the limit) and of the whole machine. Rejects if the load generator
 * fails, which it does if any echoed byte was wrong.
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
    if (line === 'measure-start' || line === 'measure-end') marks[line] = sample(serverPid, child.pid)
    else process.stderr.write(`${line}\n`)
  })
  const [code, signal] = await once(child, 'close')
  if (code !== 0) throw new Error(`loadgen ${args.join(' ')} failed (exit code ${code}, signal ${signal})`)
  const start = marks['measure-start']
  const end = marks['measure-end']
  return {
    report: JSON.parse(stdout),
    wallNs: Number(end.wallNs - start.wallNs),
    serverCpuNs: end.serverCpuNs - start.serverCpuNs,
    serverMainThreadCpuNs: end.serverMainThreadCpuNs - start.serverMainThreadCpuNs,
    loadgenCpuNs: end.loadgenCpuNs - start.loadgenCpuNs,
    machineBusyNs: end.machineBusyNs - start.machineBusyNs,
  }
}

/**
 * One case against one server: a fresh server process, so no case inherits another's state.
 * Resolves to `{ unavailable: reason }` if the server does not start (usockets-rs before it
 * supports what the case needs), so the other servers still run.
 */
async function measure(scenario, testCase, server) {
  process.stderr.write(`${scenario}: ${testCase.name} on ${server.name}\n`)
  if (server.unavailable !== undefined) return { unavailable: server.unavailable }
  let started
  try {
    started = await startServer(server)
  } catch (err) {
    return { unavailable: err.message }
  }
  let run
  try {
    run = await runLoadgen(testCase.args, started.port, started.child.pid)
  } finally {
    await stopServer(started.child)
  }
  return { ...run, serverReports: started.reports }
}

/** CPU time the rest of the machine used in the measured window. */
function otherCpuNs(run) {
  return run.machineBusyNs - run.serverCpuNs - run.loadgenCpuNs
}

function serverCpuUsPerOp(run) {
  return run.serverCpuNs / 1e3 / run.report.ops
}

/** Whether a run produced numbers to compare with. */
function measured(run) {
  return run !== undefined && run.unavailable === undefined && run.report.ops > 0
}

/**
 * A result row. `baseline`, `peer` and `limit` are the runs of node, of Bun and of the limit
 * server on the same case (undefined or unavailable: no ratio).
 */
function row(testCase, server, run, { baseline, peer, limit, jsThreadShare }) {
  if (run.unavailable !== undefined) return { case: testCase.name, server: server.name, status: 'unavailable' }
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
  }
  // UDP: the datagrams that did not come back (dropped by the server or the kernel).
  if (report.lossPct !== undefined) result.lossPct = report.lossPct
  // TLS connect with --resume: the share of handshakes that resumed a session.
  if (testCase.args.includes('--resume') && report.handshakes > 0) {
    result.resumedPct = (100 * report.resumedHandshakes) / report.handshakes
  }
  if (jsThreadShare) {
    // The JS thread's share of the server process's CPU time; the limit server has none.
    result.jsThreadPct = server.js ? (100 * run.serverMainThreadCpuNs) / run.serverCpuNs : null
  }
  Object.assign(result, {
    loadgenCpuPct: (100 * run.loadgenCpuNs) / run.wallNs,
    otherCpuPct: (100 * otherCpuNs(run)) / run.wallNs,
    errors: report.errors,
  })
  for (const [suffix, reference] of [
    ['Node', baseline],
    ['Bun', peer],
    ['Limit', limit],
  ]) {
    const comparable = measured(run) && measured(reference)
    result[`opsVs${suffix}`] = comparable ? report.opsPerSec / reference.report.opsPerSec : null
    result[`cpuPerOpVs${suffix}`] = comparable ? serverCpuUsPerOp(run) / serverCpuUsPerOp(reference) : null
  }
  return result
}

/**
 * Notes on how to read the table: which rows the load generator limited, which competed with
 * other processes, and what the TLS handshakes agreed on (the same for every server, or the
 * ratios compare different work).
 */
function interpretationNotes(runs) {
  const loadgenBound = []
  const noisy = []
  const negotiated = new Map()
  for (const [caseName, caseRuns] of Object.entries(runs)) {
    for (const [serverName, run] of Object.entries(caseRuns)) {
      if (!measured(run)) continue
      if ((100 * run.loadgenCpuNs) / run.wallNs >= LOADGEN_BOUND_PCT) loadgenBound.push(`${serverName} on ${caseName}`)
      if ((100 * otherCpuNs(run)) / run.wallNs >= OTHER_BUSY_PCT) noisy.push(`${serverName} on ${caseName}`)
      const tls = run.report.tls
      if (tls !== null) {
        const key = `${tls.version} ${tls.cipherSuite} ${tls.keyExchange}`
        negotiated.set(key, [...(negotiated.get(key) ?? []), serverName])
      }
    }
  }
  if (loadgenBound.length > 0) {
    console.log(
      `loadgen-bound (loadgenCpuPct >= ${LOADGEN_BOUND_PCT}: the server could have done more, so its rate ` +
        `is a lower bound; compare serverCpuUsPerOp): ${loadgenBound.join('; ')}`,
    )
  }
  if (noisy.length > 0) {
    console.log(`noisy (otherCpuPct >= ${OTHER_BUSY_PCT}: other processes competed; rerun): ${noisy.join('; ')}`)
  }
  for (const [key, serverNames] of negotiated) {
    const who = negotiated.size === 1 ? 'every run' : [...new Set(serverNames)].join(', ')
    console.log(`tls: ${who} negotiated ${key}`)
  }
}

/** How far apart repeated runs of one case landed: (max - min) / mean. */
function spread(values) {
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length
  return (Math.max(...values) - Math.min(...values)) / mean
}

/**
 * Runs every case on every server, in alternation (case by case, the servers in order), and
 * prints one JSON row per (case, server) on stdout, then notes. `baseline` (a node server),
 * `peer` (Bun) and `limit` must be among `servers`; `noiseProbe` among `cases`: it also runs on the baseline
 * first and last, to show how much the machine drifted. With `jsThreadShare` the rows say how
 * much of a Node.js server's CPU time its JS thread used. Resolves to the runs, by case name
 * and then server name, for the caller's own notes; sets the exit code if a run had errors.
 */
async function runScenario({ scenario, cases, servers, baseline, peer, limit, noiseProbe, jsThreadShare = false }) {
  buildTools()
  const noiseRuns = [await measure(scenario, noiseProbe, baseline)]
  const runs = {}
  const unavailable = new Map()
  let rowsWithErrors = 0
  for (const testCase of cases) {
    if (CASE_FILTER.length > 0 && !CASE_FILTER.some((part) => testCase.name.includes(part))) continue
    const caseRuns = (runs[testCase.name] = {})
    for (const server of servers) caseRuns[server.name] = await measure(scenario, testCase, server)
    for (const server of servers) {
      const run = caseRuns[server.name]
      const references = {
        baseline: caseRuns[baseline.name],
        peer: caseRuns[peer.name],
        limit: caseRuns[limit.name],
        jsThreadShare,
      }
      console.log(JSON.stringify(row(testCase, server, run, references)))
      if (run.unavailable !== undefined) unavailable.set(server.name, run.unavailable)
      else if (run.report.errors > 0) rowsWithErrors++
    }
    if (testCase === noiseProbe) noiseRuns.push(caseRuns[baseline.name])
  }
  noiseRuns.push(await measure(scenario, noiseProbe, baseline))
  const opsPerSec = noiseRuns.filter(measured).map((run) => Math.round(run.report.opsPerSec))
  console.log(
    `noise: ${baseline.name} ${noiseProbe.name} at the start, in the table and at the end: ` +
      `${opsPerSec.join(', ')} ops/s, spread ${(100 * spread(opsPerSec)).toFixed(1)}% of the mean`,
  )
  console.log(PIN ? 'pinned: servers on CPU 0, loadgen on CPU 1' : 'not pinned: fewer than 2 CPUs')
  interpretationNotes(runs)
  for (const [name, reason] of unavailable) console.log(`${name}: unavailable, ${reason}`)
  // Connections failing under a load this light point at a server bug, not noise.
  if (rowsWithErrors > 0) {
    console.log(`errors: ${rowsWithErrors} row(s) had failed connections (see the errors column)`)
    process.exitCode = 1
  }
  return runs
}

/** Runs a scenario script's `main`; a failure is printed and sets the exit code. */
function runMain(main) {
  main().catch((err) => {
    console.error(err)
    process.exitCode = 1
  })
}

module.exports = { TLS_FIXTURES, bunServer, limitServer, measured, nodeServer, runMain, runScenario, serverCpuUsPerOp }
