import test from 'ava'

import { lastJson, runFixture } from './helpers/util'

// test/fixtures/worker-rounds.js runs in its own process so that its thread and fd counts are
// not disturbed by ava. Each of its 20 rounds starts 4 workers (test/fixtures/worker-loop.js),
// each with two loops, six repeating 1 ms timers and a poll: 2 finish by themselves, 2 are
// terminated mid-stream.
test.serial('loops in worker_threads: no crash, no thread or fd leak across 20 rounds', async (t) => {
  const result = await runFixture('worker-rounds.js', ['20'], 50_000)
  t.false(result.timedOut, 'worker-rounds.js hung')
  t.is(result.signal, null, `killed by ${result.signal}: ${result.stderr}`)
  t.is(result.code, 0, result.stderr)
  const report = lastJson(result.stdout)
  t.deepEqual(report.failures, [], 'some workers misbehaved (hung, errored, or did not exit by themselves)')
  // Node's own pools may grow once, during the warm-up round; after that nothing may grow.
  t.true(
    report.final.threads <= report.baseline.threads + 2,
    `threads grew from ${report.baseline.threads} (after round 1) to ${report.final.threads}`,
  )
  t.true(report.final.fds <= report.baseline.fds + 2, `fds grew from ${report.baseline.fds} (after round 1) to ${report.final.fds}`)
  // Every loop thread of a worker is gone; the parent's one open loop keeps exactly one.
  t.is(report.loopThreadsWithParentLoop, 1, "'usockets-loop' threads alive with one parent loop open")
  t.is(report.loopThreadsAfterClose, 0, "'usockets-loop' threads alive after the parent closed its loop")
})
