import path from 'node:path'

import test from 'ava'

import { jsonSummary, runNodeProcess } from './helpers/util'

// test/backpressure.js: a node:net sender (in a process of its own) pushes 512 MiB as fast as it
// can to a usockets-rs server whose JavaScript is slow (new Loop({ maxPendingBytes: 8 MiB })). It
// runs in its own process so that its RSS is its own; see the header of that file.

const SCRIPT = path.join(__dirname, '..', 'test', 'backpressure.js')
const MiB = 1024 * 1024

const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`

test.serial('a slow JS consumer holds back a fast sender: 512 MiB arrive in order, RSS stays bounded', async (t) => {
  t.timeout(90_000)
  const run = await runNodeProcess([SCRIPT], { timeoutMs: 70_000 })
  const summary = jsonSummary(t, run)
  if (summary === undefined) return
  t.log(
    `${mib(summary.bytes)} in ${summary.seconds} s (${summary.mibPerSecond} MiB/s); RSS ${mib(summary.rssStart)} before, ` +
      `peak +${mib(summary.rssPeakDelta)} (limit +${mib(summary.rssLimitDelta)}); the sender finished after ` +
      `${summary.senderSeconds} s, when ${mib(summary.receivedWhenSenderFinished)} had been consumed`,
  )
  t.false(run.timedOut, 'backpressure.js hung')
  t.is(run.signal, null, `killed by ${run.signal}: ${run.stderr}`)
  t.is(summary.bytes, summary.expectedBytes, 'bytes received')
  t.false(
    summary.failures.some((f: string) => f.startsWith('byte ')),
    `the data was corrupted: ${summary.failures.join('; ')}`,
  )
  t.true(
    summary.rssPeakDelta <= summary.rssLimitDelta,
    `RSS peak ${mib(summary.rssPeakDelta)} above the start, more than maxPendingBytes + 64 MiB = ${mib(summary.rssLimitDelta)} ` +
      `(reached after ${mib(summary.rssPeakAtBytes)})`,
  )
  t.true(
    summary.receivedWhenSenderFinished >= summary.expectedBytes - summary.rssLimitDelta,
    `the sender was not held back: it finished after ${summary.senderSeconds} s, when only ` +
      `${mib(summary.receivedWhenSenderFinished)} of ${mib(summary.expectedBytes)} had been consumed`,
  )
  t.deepEqual(summary.failures, [])
  t.is(run.code, 0, run.stderr)
  t.true(summary.seconds < 40, `took ${summary.seconds} s`)
})

// The control case: the same run with a loop whose limit is 1 TiB, i.e. what an unbounded native
// queue looks like. The checks above must catch it, or they prove nothing.
test.serial('control: with an unbounded queue (maxPendingBytes 1 TiB) the RSS and sender checks fail', async (t) => {
  t.timeout(90_000)
  const run = await runNodeProcess([SCRIPT], { env: { BP_LOOP_MAX_PENDING: String(2 ** 40), BP_MIB: '128' }, timeoutMs: 70_000 })
  const summary = jsonSummary(t, run)
  if (summary === undefined) return
  t.log(`RSS peak +${mib(summary.rssPeakDelta)} (limit +${mib(summary.rssLimitDelta)}); sender done when ${mib(summary.receivedWhenSenderFinished)} consumed`)
  t.false(run.timedOut, 'backpressure.js hung')
  t.is(run.signal, null, `killed by ${run.signal}: ${run.stderr}`)
  t.is(summary.bytes, summary.expectedBytes, 'bytes received')
  t.false(summary.failures.some((f: string) => f.startsWith('byte ')), summary.failures.join('; '))
  t.true(summary.rssPeakDelta > summary.rssLimitDelta, `an unbounded queue stayed within the RSS limit: +${mib(summary.rssPeakDelta)}`)
  t.true(
    summary.receivedWhenSenderFinished < summary.expectedBytes - summary.rssLimitDelta,
    `an unbounded queue still held the sender back (${mib(summary.receivedWhenSenderFinished)} consumed when it finished)`,
  )
  t.is(run.code, 1, 'backpressure.js reported success with an unbounded queue')
})
