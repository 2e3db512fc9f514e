import test from 'ava'

import { type FixtureResult, runFixture } from './helpers/util'

// Each case runs test/fixtures/liveness.js <mode> in its own Node process and measures how long
// that process lives. Node itself starts in ~100 ms; "exits fast" allows 2 s for slow machines,
// far below the 5 s handles that must not hold the process.
const FAST_MS = 2000

async function live(t: any, mode: string): Promise<FixtureResult> {
  const result = await runFixture('liveness.js', [mode], 10_000)
  t.false(result.timedOut, `${mode}: the process was still alive after 10 s`)
  t.is(result.code, 0, `${mode}: stderr ${result.stderr}`)
  t.is(result.stderr, '', `${mode}: unexpected stderr`)
  return result
}

function exitsFast(t: any, result: FixtureResult): void {
  t.true(result.elapsedMs < FAST_MS, `lived ${result.elapsedMs} ms; stdout ${JSON.stringify(result.stdout)}`)
}

test.serial('(a) an idle process with Loop.default() and new Loop() exits at once', async (t) => {
  exitsFast(t, await live(t, 'idle'))
})

test.serial('(b) an armed non-fallthrough timer keeps the process alive until it fires', async (t) => {
  const result = await live(t, 'armed')
  t.regex(result.stdout, /^fired \d+\n$/)
  t.true(Number(result.stdout.split(' ')[1]) >= 300)
  t.true(result.elapsedMs >= 300, `lived ${result.elapsedMs} ms`)
  t.true(result.elapsedMs < 3000, `lived ${result.elapsedMs} ms: did not exit by itself after the timer fired`)
})

test.serial('(c) a fallthrough timer alone does not keep the process alive', async (t) => {
  const result = await live(t, 'fallthrough')
  exitsFast(t, result)
  t.false(result.stdout.includes('fired'))
})

test.serial('(c2) a started fallthrough poll alone does not keep the process alive', async (t) => {
  const result = await live(t, 'fallthrough-poll')
  exitsFast(t, result)
  t.is(result.stdout, '')
})

test.serial('(d) unarmed timers never keep the process alive', async (t) => {
  exitsFast(t, await live(t, 'unarmed'))
})

test.serial('(e) a timer disarmed with set(cb, 0, 0) releases the process', async (t) => {
  const result = await live(t, 'disarmed')
  exitsFast(t, result)
  t.false(result.stdout.includes('fired'))
})

test.serial('(e2) closed timers and polls release the process', async (t) => {
  const result = await live(t, 'closed')
  exitsFast(t, result)
  t.is(result.stdout, '')
})

test.serial('(e3) closing the loop releases the process', async (t) => {
  const result = await live(t, 'loop-closed')
  exitsFast(t, result)
  t.is(result.stdout, '')
})

test.serial('(f) a started non-fallthrough poll keeps the process alive until stop()', async (t) => {
  const result = await live(t, 'poll')
  t.regex(result.stdout, /^stopped \d+\n$/, 'the process exited before the poll was stopped')
  t.true(result.elapsedMs >= 200, `lived ${result.elapsedMs} ms`)
  t.true(result.elapsedMs < 3000, `lived ${result.elapsedMs} ms: did not exit by itself after stop()`)
})

test.serial("(g) closing a fallthrough handle never releases another handle's hold", async (t) => {
  const result = await live(t, 'fallthrough-close')
  t.regex(result.stdout, /^fired \d+\n$/)
  t.true(result.elapsedMs >= 300, `lived ${result.elapsedMs} ms`)
  t.true(result.elapsedMs < 3000, `lived ${result.elapsedMs} ms`)
})

test.serial('(g2) handles released twice over (stop/disarm/close repeated) never release another hold', async (t) => {
  const result = await live(t, 'no-double-release')
  t.regex(result.stdout, /^fired \d+\n$/)
  t.true(result.elapsedMs >= 300, `lived ${result.elapsedMs} ms`)
  t.true(result.elapsedMs < 3000, `lived ${result.elapsedMs} ms`)
})

test.serial('(h) a one-shot timer re-armed from its callback keeps holding the process', async (t) => {
  const result = await live(t, 'rearm')
  t.deepEqual(
    result.stdout.trim().split('\n').map((line) => line.split(' ').slice(0, 2).join(' ')),
    ['fired 1', 'fired 2', 'fired 3'],
  )
  t.true(result.elapsedMs >= 300, `lived ${result.elapsedMs} ms`)
  t.true(result.elapsedMs < 3000, `lived ${result.elapsedMs} ms`)
})

test.serial('(i) a repeating timer holds the process until it is closed', async (t) => {
  const result = await live(t, 'repeating')
  t.regex(result.stdout, /^closed \d+\n$/)
  t.true(result.elapsedMs >= 200, `lived ${result.elapsedMs} ms`)
  t.true(result.elapsedMs < 3000, `lived ${result.elapsedMs} ms`)
})
