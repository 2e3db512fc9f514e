import test from 'ava'

import { type HandleOptions, Loop, Timer } from '..'

import { busyWait, isSettled, looseClass, newLoop, sleep, type Teardown, waitFor, within } from './helpers/util'

/** A fresh loop (closed when the test ends) and a timer on it. */
function newTimer(t: Teardown, options?: HandleOptions): { loop: Loop; timer: Timer } {
  const loop = newLoop(t)
  return { loop, timer: new Timer(loop, options) }
}

/**
 * Arms `timer` as a 1 ms one-shot whose callback re-arms it as a 1 ms repeating timer, closed by its
 * fifth repeat. Returns the count of repeats so far.
 */
function rearmAsRepeating(timer: Timer): () => number {
  let repeats = 0
  timer.set(
    () => {
      timer.set(
        () => {
          if (++repeats === 5) timer.close()
        },
        1,
        1,
      )
    },
    1,
    0,
  )
  return () => repeats
}

/** Arms a one-shot timer and resolves with the ms elapsed between set() and the callback. */
function fireOnce(timer: Timer, ms: number): Promise<{ elapsed: number; arg: unknown }> {
  return new Promise((resolve) => {
    const start = performance.now()
    timer.set((arg: unknown) => resolve({ elapsed: performance.now() - start, arg }), ms, 0)
  })
}

test.serial('a one-shot timer fires once, never early, with the timer as argument', async (t) => {
  const loop = newLoop(t)
  for (const ms of [1, 7, 30, 55]) {
    const timer = new Timer(loop)
    let calls = 0
    const fired = new Promise<number>((resolve) => {
      const start = performance.now()
      timer.set(
        (arg: unknown) => {
          calls++
          t.is(arg, timer)
          resolve(performance.now() - start)
        },
        ms,
        0,
      )
    })
    const elapsed = await within(fired, 2000)
    t.not(elapsed, 'timeout', `a ${ms} ms timer did not fire within 2 s`)
    t.true((elapsed as number) >= ms, `a ${ms} ms timer fired after ${elapsed} ms`)
    await sleep(Math.max(40, 2 * ms))
    t.is(calls, 1, `a ${ms} ms one-shot timer fired ${calls} times`)
    timer.close()
  }
})

test('a timer constructed without a loop runs on Loop.default()', async (t) => {
  const timer = new Timer()
  t.teardown(() => timer.close())
  const result = await within(fireOnce(timer, 5), 2000)
  t.not(result, 'timeout')
  // The default loop now holds nothing, so its run() resolves at once.
  t.true(await isSettled(Loop.default().run()))
})

test.serial('a repeating timer fires on schedule, never early, until close()', async (t) => {
  const { timer } = newTimer(t)
  const times: number[] = []
  const start = performance.now()
  timer.set(() => times.push(performance.now() - start), 10, 10)
  t.true(await waitFor(() => times.length >= 8, 3000), `only ${times.length} expiries in 3 s`)
  timer.close()
  const count = times.length
  // Each expiry is a distinct point of the schedule 10, 20, 30... (late ones collapse).
  times.forEach((at, k) => t.true(at >= 10 * (k + 1), `expiry #${k + 1} came at ${at} ms`))
  await sleep(60)
  t.is(times.length, count, 'the timer fired after close()')
})

test('a repeating timer stops when closed from its own callback', async (t) => {
  const { loop, timer } = newTimer(t)
  let calls = 0
  timer.set(
    () => {
      if (++calls === 3) timer.close()
    },
    1,
    1,
  )
  t.true(await waitFor(() => calls >= 3))
  await sleep(50)
  t.is(calls, 3)
  t.true(await isSettled(loop.run()), 'a closed timer still holds the loop')
})

test.serial('set(cb, 0, 0) disarms: an expiry already queued never runs', async (t) => {
  const loop = newLoop(t)
  for (const repeat of [0, 1]) {
    const timer = new Timer(loop)
    let calls = 0
    timer.set(() => calls++, 1, repeat)
    busyWait(20) // the expiry happens on the loop thread and waits for this thread
    timer.set(() => calls++, 0, 0)
    await sleep(50)
    t.is(calls, 0, `a disarmed timer (repeat ${repeat}) ran its callback`)
    t.true(await isSettled(loop.run()), 'a disarmed timer still holds the loop')
    timer.close()
  }
})

test.serial('set(cb, 0, 0) disarms a repeating timer from its own callback', async (t) => {
  const { timer } = newTimer(t)
  let calls = 0
  timer.set(
    () => {
      calls++
      busyWait(5) // let the next expiry come due while the callback runs
      timer.set(() => {}, 0, 0)
    },
    1,
    1,
  )
  t.true(await waitFor(() => calls >= 1))
  await sleep(50)
  t.is(calls, 1)
  timer.close()
})

test.serial('a new set() replaces the old one: the old callback and delay never fire', async (t) => {
  const loop = newLoop(t)

  // Longer replaces shorter.
  const a = new Timer(loop)
  let oldCalls = 0
  a.set(() => oldCalls++, 10, 0)
  const longer = await within(fireOnce(a, 60), 2000)
  t.not(longer, 'timeout')
  t.true((longer as { elapsed: number }).elapsed >= 60, `replaced timer fired after ${JSON.stringify(longer)}`)
  t.is(oldCalls, 0, 'the replaced 10 ms callback ran')

  // Shorter replaces longer: the old deadline is forgotten.
  const b = new Timer(loop)
  b.set(() => oldCalls++, 400, 0)
  const shorter = await within(fireOnce(b, 10), 2000)
  t.not(shorter, 'timeout')
  const elapsed = (shorter as { elapsed: number }).elapsed
  t.true(elapsed >= 10 && elapsed < 350, `the 10 ms replacement fired after ${elapsed} ms`)
  await sleep(450)
  t.is(oldCalls, 0, 'the replaced 400 ms callback ran')

  // A repeating timer replaced by a one-shot one: fires once.
  const c = new Timer(loop)
  let repeats = 0
  c.set(() => repeats++, 1, 1)
  await waitFor(() => repeats > 0)
  let once = 0
  c.set(() => once++, 5, 0)
  const before = repeats
  await sleep(60)
  t.is(once, 1)
  t.is(repeats, before, 'the replaced repeating callback kept running')

  // Replacing after the old expiry was queued: the queued one is dropped.
  const d = new Timer(loop)
  d.set(() => oldCalls++, 1, 0)
  busyWait(20)
  const afterQueued = await within(fireOnce(d, 15), 2000)
  t.not(afterQueued, 'timeout')
  t.true((afterQueued as { elapsed: number }).elapsed >= 15)
  await sleep(30)
  t.is(oldCalls, 0, 'an expiry queued before the new set() ran the old callback')

  for (const timer of [a, b, c, d]) timer.close()
})

test.serial("a one-shot timer's callback may set the same timer again", async (t) => {
  const { loop, timer } = newTimer(t)
  const gaps: number[] = []
  let last = performance.now()
  const cb = () => {
    const now = performance.now()
    gaps.push(now - last)
    last = now
    if (gaps.length < 4) timer.set(cb, 5, 0)
  }
  timer.set(cb, 5, 0)
  t.true(await waitFor(() => gaps.length >= 4, 3000), `only ${gaps.length} expiries`)
  gaps.forEach((gap, k) => t.true(gap >= 5, `expiry #${k + 1} came ${gap} ms after its set()`))
  await sleep(30)
  t.is(gaps.length, 4)
  t.true(await isSettled(loop.run()), 'the timer still holds the loop after its last expiry')
  timer.close()
})

test('a one-shot callback may re-arm its timer as a repeating one', async (t) => {
  const { timer } = newTimer(t)
  const repeats = rearmAsRepeating(timer)
  t.true(await waitFor(() => repeats() >= 5, 3000))
  await sleep(20)
  t.is(repeats(), 5)
})

// API.md: run() "resolves when the loop has no non-fallthrough handle left". A one-shot timer
// whose callback arms it again never leaves the loop without one.
test.serial('run() keeps waiting while a one-shot callback re-arms its timer', async (t) => {
  const { loop, timer } = newTimer(t)
  let fired = 0
  const cb = () => {
    if (++fired < 3) timer.set(cb, 10, 0)
  }
  timer.set(cb, 10, 0)
  t.not(await within(loop.run(), 3000), 'timeout')
  t.is(fired, 3, `run() resolved after ${fired} of 3 expiries, with the timer armed again`)
  timer.close()
})

test.serial('run() keeps waiting while a one-shot callback re-arms its timer as a repeating one', async (t) => {
  const { loop, timer } = newTimer(t)
  const repeats = rearmAsRepeating(timer)
  t.not(await within(loop.run(), 3000), 'timeout')
  t.is(repeats(), 5, `run() resolved after ${repeats()} of 5 repeats, with the timer still armed`)
})

test('timer.ext holds any value, undefined until set', (t) => {
  const { loop, timer } = newTimer(t)
  t.is(timer.ext, undefined)
  const values = [42, 'text', null, { deep: [1, 2] }, () => 1, Symbol('s'), 10n, undefined]
  for (const value of values) {
    timer.ext = value
    t.is(timer.ext, value)
  }
  const other = new Timer(loop)
  timer.ext = 'mine'
  t.is(other.ext, undefined, 'ext is per timer')
  timer.close()
  timer.ext = 'after close'
  t.is(timer.ext, 'after close')
  other.close()
})

test('set() on a closed timer does nothing', async (t) => {
  const { loop, timer } = newTimer(t)
  timer.close()
  let calls = 0
  t.notThrows(() => timer.set(() => calls++, 1, 0))
  t.notThrows(() => timer.set(() => calls++, 1, 1))
  t.notThrows(() => timer.set(() => calls++, 0, 0))
  t.true(await isSettled(loop.run()), 'a closed timer holds the loop')
  await sleep(40)
  t.is(calls, 0)
  t.notThrows(() => timer.close(), 'a second close() throws')
})

test('closing an armed timer stops it', async (t) => {
  const { loop, timer } = newTimer(t)
  let calls = 0
  timer.set(() => calls++, 1, 0)
  busyWait(15)
  timer.close()
  await sleep(40)
  t.is(calls, 0)
  t.true(await isSettled(loop.run()))
})

test('the fallthrough option is type-checked', (t) => {
  const loop = newLoop(t)
  for (const bad of ['yes', 1, null, {}]) {
    const err = t.throws(() => new (looseClass(Timer))(loop, { fallthrough: bad }), { instanceOf: TypeError })
    t.is((err as any)?.code, 'ERR_INVALID_ARG_TYPE')
    t.regex(err?.message ?? '', /"options\.fallthrough"/)
  }
  const err = t.throws(() => new (looseClass(Timer))(loop, 5), { instanceOf: TypeError })
  t.is((err as any)?.code, 'ERR_INVALID_ARG_TYPE')
  t.regex(err?.message ?? '', /"options"/)
  for (const ok of [undefined, {}, { fallthrough: true }, { fallthrough: false }]) {
    t.notThrows(() => new Timer(loop, ok).close())
  }
})

test('a fallthrough timer fires but does not hold run()', async (t) => {
  const { loop, timer } = newTimer(t, { fallthrough: true })
  const fired = fireOnce(timer, 30)
  t.true(await isSettled(loop.run()), 'run() waits for a fallthrough timer')
  const result = await within(fired, 2000)
  t.not(result, 'timeout')
  t.true((result as { elapsed: number }).elapsed >= 30)
  timer.close()
})

test.serial('timers fire in deadline order (30, 10, 20 ms → 10, 20, 30)', async (t) => {
  const loop = newLoop(t)
  const order: number[] = []
  const timers = [30, 10, 20].map((ms) => {
    const timer = new Timer(loop)
    timer.set(() => order.push(ms), ms, 0)
    return timer
  })
  t.not(await within(loop.run(), 3000), 'timeout')
  t.deepEqual(order, [10, 20, 30])
  for (const timer of timers) timer.close()
})

test.serial('timers sharing one loop-thread wakeup still run in deadline order', async (t) => {
  const loop = newLoop(t)
  const order: number[] = []
  const delays = [9, 3, 7, 1, 5, 8, 2, 6, 4]
  const timers = delays.map((ms) => {
    const timer = new Timer(loop)
    timer.set(() => order.push(ms), ms, 0)
    return timer
  })
  busyWait(25) // all nine expire before this thread takes any of them
  t.not(await within(loop.run(), 3000), 'timeout')
  t.deepEqual(order, [1, 2, 3, 4, 5, 6, 7, 8, 9])
  for (const timer of timers) timer.close()
})

test.serial('many timers: each fires once, never early; closed ones never fire', async (t) => {
  const loop = newLoop(t)
  const count = 300
  const fired = new Array<number>(count).fill(0)
  const early: string[] = []
  const timers: Timer[] = []
  for (let i = 0; i < count; i++) {
    const ms = 1 + ((i * 37) % 60)
    const timer = new Timer(loop)
    const start = performance.now()
    timer.set(() => {
      fired[i]++
      const elapsed = performance.now() - start
      if (elapsed < ms) early.push(`#${i}: ${ms} ms timer after ${elapsed} ms`)
    }, ms, 0)
    timers.push(timer)
  }
  // Close every third one before it can fire (the shortest is 1 ms: close those at once).
  for (let i = 0; i < count; i += 3) timers[i].close()
  t.not(await within(loop.run(), 5000), 'timeout')
  await sleep(20)
  t.deepEqual(early, [])
  const wrong = fired.flatMap((n, i) => (n === (i % 3 === 0 ? 0 : 1) ? [] : [`#${i} fired ${n} times`]))
  t.deepEqual(wrong, [])
  for (const timer of timers) timer.close()
})
