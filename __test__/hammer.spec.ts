import path from 'node:path'

import test from 'ava'

import { jsonSummary, runNodeProcess } from './helpers/util'

// test/hammer.js: a seeded randomized lifecycle stress test after uSockets' hammer_test.c (see the
// header of that file for what it does and checks). It runs in its own Node process, so that its
// fd counts are clean and a crash shows as a failed exit. HAMMER_SEED=<n> picks another seed
// (default 1); the other HAMMER_* variables of the script pass through.

const SCRIPT = path.join(__dirname, '..', 'test', 'hammer.js')
// The script gives up by itself after 90 s (HAMMER_WALL_MS); this is the backstop.
const KILL_MS = 120_000
// After printing its summary the script closes nothing: the process must exit by itself.
const EXIT_AFTER_SUMMARY_MS = 10_000

test('hammer: random lifecycle operations on 5000 connections keep every invariant', async (t) => {
  t.timeout(KILL_MS + 30_000)
  const seed = process.env.HAMMER_SEED ?? '1'
  const run = await runNodeProcess([SCRIPT, seed], { timeoutMs: KILL_MS, exitAfterFirstLineMs: EXIT_AFTER_SUMMARY_MS })
  t.log(`seed ${seed}: ${Math.round(run.elapsedMs)} ms`)

  const summary = jsonSummary(t, run)
  if (summary === undefined) return
  t.log(
    `events ${JSON.stringify(summary.events)}, by context ${JSON.stringify(summary.eventsByContext)}, ` +
      `close codes ${JSON.stringify(summary.closeCodes)}, fds ${JSON.stringify(summary.fds)}, ` +
      `timeouts late by ${JSON.stringify(summary.timeoutLateMs)} ms, run resolved at ${summary.runResolvedMs} ms`,
  )

  t.is(run.killedBy, null, `the hammer process ${run.killedBy}`)
  t.is(run.signal, null, `killed by ${run.signal}: ${run.stderr}`)
  t.false(summary.timedOut, `wall-clock limit reached; sockets still open: ${JSON.stringify(summary.stuckSockets, null, 1)}`)
  t.deepEqual(summary.violationKinds, {}, `violations (examples):\n${summary.violations.join('\n')}`)
  t.is(summary.violationCount, 0)

  // One onClose per onOpen, on both sides, for every client.
  const n = summary.clients
  t.is(summary.openedClients, n)
  t.is(summary.openedServers, n)
  t.is(summary.closedClients, n)
  t.is(summary.closedServers, n)
  t.is(summary.events.open, 2 * n)
  t.is(summary.events.close, 2 * n)
  t.is(summary.connectsStarted, n + summary.connectErrors)

  // The loop ended by itself, after the listener closed (that is after the last close).
  t.true(summary.listenerClosedMs > 0, 'the listener was never closed')
  t.true(summary.runResolvedMs >= summary.listenerClosedMs, 'loop.run() resolved before the listener closed')
  t.true(
    summary.fds.afterRun <= summary.fds.beforeListen + 2,
    `fds: ${summary.fds.beforeListen} before listening, ${summary.fds.afterRun} after the run`,
  )
  t.is(run.code, 0, run.stderr)

  // The run exercised what it is about (so that a change that silently skips it shows).
  t.true(summary.eventsByContext.ws > 0, 'no event reached the ws context: no adoption happened')
  t.true(summary.ops.adopt > 0 && summary.ops.shutdown > 0 && summary.ops.write > 0 && summary.ops.close > 0)
  t.true(summary.events.data > 0 && summary.events.end > 0 && summary.events.timeout > 0)
  t.true(summary.opsOnClosed > 0, 'no operation ran on a closed socket')
  t.true(summary.crossOps > 0, 'no operation ran on another socket from onTimeout')
})
