'use strict'
// What the stress scenarios share: process measurements, TLS fixtures, and one way to report.
// Each scenario prints one JSON line { scenario, ok, failures, ...figures } and exits 0 only
// if every bar held (test/stress/run.js runs them and shows the figures).

const fs = require('node:fs')
const path = require('node:path')
const { fds, threads, sleep } = require('../fixtures/lib')

const MiB = 1024 * 1024
const FIXTURES = path.join(__dirname, '..', 'fixtures', 'tls')
const fixture = (name) => fs.readFileSync(path.join(FIXTURES, name))

/** Resident set size of this process, in bytes. */
function rss() {
  const status = fs.readFileSync('/proc/self/status', 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) * 1024
}

/** Open socket descriptors of this process (what a socket leak would leave behind; Node's own
 * bookkeeping, such as the /dev/null it opens for child processes, does not count). */
function socketFds() {
  let count = 0
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:')) count++
    } catch {
      // closed meanwhile (the directory's own descriptor)
    }
  }
  return count
}

/** Collects garbage (the scenarios run with --expose-gc) until RSS settles. */
async function settle() {
  for (let i = 0; i < 4; i++) {
    globalThis.gc?.()
    await sleep(50)
  }
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

const mib = (bytes) => Math.round((bytes / MiB) * 10) / 10

/**
 * A usockets-rs TLS echo server on 127.0.0.1 (the fixtures' certificate) that counts the
 * sockets JavaScript saw open: `{ loop, ctx, listener, opened() }`.
 */
function tlsEchoServer() {
  const { Loop, SocketContext } = require('../..')
  const loop = new Loop()
  const ctx = new SocketContext(loop, { tls: { key: fixture('server.key'), cert: fixture('server.pem') } })
  let opened = 0
  ctx.onOpen(() => opened++)
  ctx.onData((socket, data) => socket.send(data))
  ctx.onEnd((socket) => socket.close())
  const listener = ctx.listen('127.0.0.1', 0)
  return { loop, ctx, listener, opened: () => opened }
}

/** Runs this scenario's `file` again as a child with `args`; resolves with its exit code and its stdout as JSON. */
function runChild(file, args) {
  const { spawn } = require('node:child_process')
  const child = spawn(process.execPath, [file, ...args.map(String)], { stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  child.stdout.on('data', (data) => (output += data))
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, result: JSON.parse(output || 'null') })))
}

/** Collects failures; `finish` prints the report line and sets the exit code. */
class Report {
  constructor(scenario) {
    this.scenario = scenario
    this.failures = []
    this.figures = {}
  }

  check(condition, message) {
    if (!condition) this.failures.push(message)
    return condition
  }

  set(figures) {
    Object.assign(this.figures, figures)
  }

  finish() {
    const ok = this.failures.length === 0
    console.log(JSON.stringify({ scenario: this.scenario, ok, failures: this.failures, ...this.figures }))
    process.exitCode = ok ? 0 : 1
  }
}

module.exports = { MiB, fixture, tlsEchoServer, runChild, rss, settle, percentile, mib, fds, socketFds, threads, sleep, Report }
