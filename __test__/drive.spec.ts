// Who runs a loop's iterations (index.d.ts, LoopOptions.driveFromJavaScript; README, "Who runs
// the loop"): observed from outside, by how often the loop's native thread sleeps and wakes,
// and how long it runs, while an in-process client talks to an echo server
// (test/fixtures/who-drives.js).
import test from 'ava'

import { Loop } from '..'
import { lastJson, looseClass, runFixture } from './helpers/util'

const ROUND_TRIPS = 300
// A loop thread that drives wakes about once per round trip (277 in 300 seen once: a wake-up
// may find the next message there already); one that does not drive wakes 0-2 times in all.
// Half a wake-up per round trip tells the two apart.

async function whoDrives(t: any, mode: string): Promise<any> {
  const result = await runFixture('who-drives.js', [mode], 30_000)
  t.is(result.code, 0, result.stderr)
  const report = lastJson(result.stdout)
  t.true(report.small.intact, 'every small echo came back')
  return report
}

test('driveFromJavaScript is validated', (t) => {
  for (const ok of [true, false]) t.notThrows(() => new Loop({ driveFromJavaScript: ok }).close())
  for (const bad of ['yes', 1, 0, null, {}]) {
    const err: any = t.throws(() => new (looseClass(Loop))({ driveFromJavaScript: bad }), { instanceOf: TypeError })
    t.is(err?.code, 'ERR_INVALID_ARG_TYPE')
    t.regex(err?.message ?? '', /"options\.driveFromJavaScript"/)
  }
})

test('by default a light loop is driven from JavaScript: small round trips never wake its thread', async (t) => {
  const { small } = await whoDrives(t, 'javascript')
  t.true(small.loopThreadSwitches < ROUND_TRIPS / 10, `the loop thread woke ${small.loopThreadSwitches} times in ${ROUND_TRIPS} round trips`)
})

test('with driveFromJavaScript: false the loop thread wakes for (about) every round trip', async (t) => {
  const { small } = await whoDrives(t, 'thread')
  t.true(small.loopThreadSwitches >= ROUND_TRIPS / 2, `the loop thread woke ${small.loopThreadSwitches} times in ${ROUND_TRIPS} round trips`)
})

test('a loop with a TLS listener is driven by its thread alone (no TLS work on the JavaScript thread)', async (t) => {
  const { small } = await whoDrives(t, 'tls')
  t.true(small.loopThreadSwitches >= ROUND_TRIPS / 2, `the loop thread woke ${small.loopThreadSwitches} times in ${ROUND_TRIPS} round trips`)
})

test('bulk data hands the driving to the loop thread, and it comes back once the loop was light for 100 ms', async (t) => {
  const { bulk, smallAfterBulk } = await whoDrives(t, 'bulk')
  t.true(bulk.intact, 'the 16 MiB echo came back intact')
  // Reading 16 MiB takes the loop thread milliseconds; had JavaScript kept driving, it would not run at all.
  t.true(bulk.loopThreadRunNs >= 2e6, `the loop thread ran only ${bulk.loopThreadRunNs} ns during the bulk echo`)
  // The hold (the thread keeps the driving for 100 ms after bulk) is tested in cargo test
  // (src/event_loop/tests.rs): here the echo's tail may outlast it on a loaded machine.
  t.true(smallAfterBulk.intact)
  t.true(
    smallAfterBulk.loopThreadSwitches < ROUND_TRIPS / 10,
    `after the bulk echo the loop thread woke ${smallAfterBulk.loopThreadSwitches} times in ${ROUND_TRIPS} round trips`,
  )
})

test('terminating workers whose loops JavaScript drives, mid-echo, leaves no thread or fd behind', async (t) => {
  const result = await runFixture('worker-drive-teardown.js', [], 60_000)
  t.is(result.code, 0, result.stderr)
  const report = lastJson(result.stdout)
  t.true(report.roundTrips > report.rounds * 10, `only ${report.roundTrips} round trips in ${report.rounds} rounds`)
  t.is(report.after.loopThreads, 0)
  t.true(report.after.fds <= report.before.fds + 2, `fds ${report.before.fds} -> ${report.after.fds}`)
})
