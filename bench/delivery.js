// Event delivery: how many timer and poll callbacks per second a Loop delivers to JS, how big
// its batches are, and what each event costs in CPU on the JS thread, the loop thread and the
// whole process.
//
// Prints one JSON object per case on stdout; bench/run.js turns them into a table.
'use strict'

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { setTimeout: sleep } = require('node:timers/promises')

const { Loop, Poll, Timer, READABLE } = require('..')
const { jsThreadCpuNs, namedThreadsCpuNs } = require('./cpu.js')

const HANDLE_COUNTS = [256, 1024, 4096]
const WARM_UP_MS = 500
const MEASURE_MS = 2000
const TIMER_PERIOD_MS = 1
const LOOP_THREAD_NAME = 'usockets-loop'

// --- the callback every case uses ---------------------------------------------------------------

const tally = { events: 0, deliveries: 0 }
let inDelivery = false

function endDelivery() {
  inDelivery = false
}

// Counts callbacks, and deliveries: Node drains the microtask queue when a threadsafe-function
// call into JS (the loop's deliver()) returns, so the first callback since the last drain
// starts a new delivery. This counts deliver() calls without reaching into index.js.
function onEvent() {
  tally.events++
  if (!inDelivery) {
    inDelivery = true
    tally.deliveries++
    queueMicrotask(endDelivery)
  }
}

// --- measuring ----------------------------------------------------------------------------------

/** Counters and clocks at one instant; two of them bound the measured window. */
function snapshot(loop) {
  return {
    wallNs: process.hrtime.bigint(),
    events: tally.events,
    deliveries: tally.deliveries,
    processCpu: process.cpuUsage(),
    jsCpuNs: jsThreadCpuNs(),
    loop: { cpuNs: namedThreadsCpuNs(LOOP_THREAD_NAME), wakeups: loop.iterationNumber },
  }
}

/**
 * One result row. `offeredPerSec` is the most events the case can produce (timers: count /
 * period), null when unbounded.
 */
function summarize(kind, handleCount, offeredPerSec, start, end) {
  const wallNs = Number(end.wallNs - start.wallNs)
  const events = end.events - start.events
  const processCpuNs = (end.processCpu.user - start.processCpu.user + end.processCpu.system - start.processCpu.system) * 1e3
  const jsCpuNs = end.jsCpuNs - start.jsCpuNs
  const loopCpuNs = end.loop.cpuNs - start.loop.cpuNs
  const loopWakeups = end.loop.wakeups - start.loop.wakeups
  return {
    case: kind,
    handles: handleCount,
    eventsPerSec: (events * 1e9) / wallNs,
    offeredPerSec,
    meanBatch: events / (end.deliveries - start.deliveries),
    jsNsPerEvent: jsCpuNs / events,
    procNsPerEvent: processCpuNs / events,
    loopNsPerEvent: loopCpuNs / events,
    jsBusyPct: (100 * jsCpuNs) / wallNs,
    loopBusyPct: (100 * loopCpuNs) / wallNs,
    loopWakeupsPerSec: (loopWakeups * 1e9) / wallNs,
  }
}

/** Lets `loop` deliver for the warm-up, then measures it while it delivers for MEASURE_MS. */
async function measureLoop(kind, handleCount, offeredPerSec, loop) {
  await sleep(WARM_UP_MS)
  const start = snapshot(loop)
  await sleep(MEASURE_MS)
  return summarize(kind, handleCount, offeredPerSec, start, snapshot(loop))
}

// --- (a) timers ----------------------------------------------------------------------------------

async function measureTimers(count) {
  const loop = new Loop()
  try {
    for (let i = 0; i < count; i++) new Timer(loop).set(onEvent, TIMER_PERIOD_MS, TIMER_PERIOD_MS)
    return await measureLoop('timers', count, (count * 1000) / TIMER_PERIOD_MS, loop)
  } finally {
    loop.close()
  }
}

// --- (b) polls -----------------------------------------------------------------------------------

const ONE_BYTE = Buffer.from([0])

async function measurePolls(count) {
  const loop = new Loop()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'usockets-bench-'))
  const fds = []
  try {
    const fifos = Array.from({ length: count }, (_, i) => path.join(dir, `fifo-${i}`))
    execFileSync('mkfifo', fifos)
    for (const fifo of fifos) {
      // O_RDWR holds both ends of the FIFO in one fd: the byte written is never read, so the
      // fd stays readable for the whole run and every poll is ready whenever it is checked.
      const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK)
      fds.push(fd)
      fs.writeSync(fd, ONE_BYTE)
      const poll = new Poll(loop)
      poll.init(fd)
      poll.start(READABLE, onEvent)
    }
    return await measureLoop('polls', count, null, loop)
  } finally {
    // The loop first, so no fd is closed while the loop thread still watches it.
    loop.close()
    for (const fd of fds) fs.closeSync(fd)
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

async function main() {
  const cases = [measureTimers, measurePolls]
  for (const measure of cases) {
    for (const count of HANDLE_COUNTS) console.log(JSON.stringify(await measure(count)))
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
