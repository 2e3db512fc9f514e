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

/** Runs `mode`, which must exit fast; resolves with what it printed. */
async function fastExit(t: any, mode: string): Promise<string> {
  const result = await live(t, mode)
  t.true(result.elapsedMs < FAST_MS, `lived ${result.elapsedMs} ms; stdout ${JSON.stringify(result.stdout)}`)
  return result.stdout
}

/** The process lived `minMs` or more, then exited by itself (within 3 s). */
function livedThenExited(t: any, result: FixtureResult, minMs: number, exitedAfter = ''): void {
  t.true(result.elapsedMs >= minMs, `lived ${result.elapsedMs} ms`)
  t.true(result.elapsedMs < 3000, `lived ${result.elapsedMs} ms${exitedAfter}`)
}

/** Runs `mode`, which must print one `fired <ms>` line and live 300 ms or more, then exit by itself. */
async function firesThenExits(t: any, mode: string, exitedAfter = ''): Promise<FixtureResult> {
  const result = await live(t, mode)
  t.regex(result.stdout, /^fired \d+\n$/)
  livedThenExited(t, result, 300, exitedAfter)
  return result
}

test.serial('(a) an idle process with Loop.default() and new Loop() exits at once', async (t) => {
  await fastExit(t, 'idle')
})

test.serial('(b) an armed non-fallthrough timer keeps the process alive until it fires', async (t) => {
  const result = await firesThenExits(t, 'armed', ': did not exit by itself after the timer fired')
  t.true(Number(result.stdout.split(' ')[1]) >= 300)
})

test.serial('(c) a fallthrough timer alone does not keep the process alive', async (t) => {
  t.false((await fastExit(t, 'fallthrough')).includes('fired'))
})

test.serial('(c2) a started fallthrough poll alone does not keep the process alive', async (t) => {
  t.is(await fastExit(t, 'fallthrough-poll'), '')
})

test.serial('(d) unarmed timers never keep the process alive', async (t) => {
  await fastExit(t, 'unarmed')
})

test.serial('(e) a timer disarmed with set(cb, 0, 0) releases the process', async (t) => {
  t.false((await fastExit(t, 'disarmed')).includes('fired'))
})

test.serial('(e2) closed timers and polls release the process', async (t) => {
  t.is(await fastExit(t, 'closed'), '')
})

test.serial('(e3) closing the loop releases the process', async (t) => {
  t.is(await fastExit(t, 'loop-closed'), '')
})

test.serial('(f) a started non-fallthrough poll keeps the process alive until stop()', async (t) => {
  const result = await live(t, 'poll')
  t.regex(result.stdout, /^stopped \d+\n$/, 'the process exited before the poll was stopped')
  livedThenExited(t, result, 200, ': did not exit by itself after stop()')
})

test.serial("(g) closing a fallthrough handle never releases another handle's hold", async (t) => {
  await firesThenExits(t, 'fallthrough-close')
})

test.serial('(g2) handles released twice over (stop/disarm/close repeated) never release another hold', async (t) => {
  await firesThenExits(t, 'no-double-release')
})

test.serial('(h) a one-shot timer re-armed from its callback keeps holding the process', async (t) => {
  const result = await live(t, 'rearm')
  t.deepEqual(
    result.stdout.trim().split('\n').map((line) => line.split(' ').slice(0, 2).join(' ')),
    ['fired 1', 'fired 2', 'fired 3'],
  )
  livedThenExited(t, result, 300)
})

test.serial('(i) a repeating timer holds the process until it is closed', async (t) => {
  const result = await live(t, 'repeating')
  t.regex(result.stdout, /^closed \d+\n$/)
  livedThenExited(t, result, 200)
})
