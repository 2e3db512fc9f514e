import fs from 'node:fs'
import { isMainThread } from 'node:worker_threads'

import test from 'ava'

import { Loop, Poll, READABLE, Timer, WRITABLE } from '..'

import { busyWait, fifoFor, isSettled, lastJson, looseClass, newLoop, runFixture, sleep, waitFor, within } from './helpers/util'

function expectLoopClosed(t: any, fn: () => unknown, what: string): void {
  const err = t.throws(fn, undefined, `${what} did not throw on a closed loop`)
  t.is(err?.code, 'ERR_LOOP_CLOSED', `${what}: wrong code`)
  t.true(err instanceof Error)
}

/** A new timer of `loop`, armed with `set(callback, ms, repeatMs)`. */
function armedTimer(loop: Loop, callback: () => unknown, ms: number, repeatMs: number): Timer {
  const timer = new Timer(loop)
  timer.set(callback, ms, repeatMs)
  return timer
}

test('Loop.default() returns the same loop every time', (t) => {
  const a = Loop.default()
  const b = Loop.default()
  t.true(a instanceof Loop)
  t.is(a, b)
  t.not(new Loop(), a, 'new Loop() returned the default loop')
})

test('new Loop() works, with or without options', async (t) => {
  for (const options of [undefined, {}, { maxPendingBytes: 64 * 1024 }, { onWakeup: () => {} }]) {
    const loop = newLoop(t, options)
    t.true(loop instanceof Loop)
    t.is(loop.ext, undefined)
    const timer = new Timer(loop)
    let fired = false
    timer.set(() => (fired = true), 1, 0)
    t.true(await waitFor(() => fired), 'a timer of a new loop did not fire')
    timer.close()
  }
  const a = newLoop(t)
  const b = newLoop(t)
  t.not(a, b)
  a.ext = { mine: true }
  t.deepEqual(a.ext, { mine: true })
  t.is(b.ext, undefined)
})

test.serial('run() resolves once the last non-fallthrough handle is gone', async (t) => {
  const loop = newLoop(t)
  const timer = new Timer(loop)
  let fired = false
  const start = performance.now()
  timer.set(() => (fired = true), 20, 0)
  const run = loop.run()
  t.false(await isSettled(run), 'run() resolved while a timer was armed')
  t.not(await within(run, 2000), 'timeout')
  t.true(fired, 'run() resolved before the timer fired')
  t.true(performance.now() - start >= 20)
  timer.close()
})

test.serial('run() waits for every holding handle, not just the first to go', async (t) => {
  const loop = newLoop(t)
  const fifo = fifoFor(t)
  const short = new Timer(loop)
  const long = new Timer(loop)
  const repeating = new Timer(loop)
  const poll = new Poll(loop)
  poll.init(fifo.fd)
  poll.start(READABLE, () => {})
  short.set(() => {}, 5, 0)
  long.set(() => {}, 40, 0)
  let ticks = 0
  repeating.set(
    () => {
      if (++ticks === 10) {
        repeating.close()
        poll.stop()
      }
    },
    3,
    3,
  )
  let resolvedAt = -1
  const start = performance.now()
  const run = loop.run().then(() => (resolvedAt = performance.now() - start))
  await sleep(25)
  t.is(resolvedAt, -1, 'run() resolved when the first timer went')
  t.not(await within(run, 3000), 'timeout')
  t.true(resolvedAt >= 40, `run() resolved after ${resolvedAt} ms, before the 40 ms timer`)
  t.is(ticks, 10)
  // Several run() calls all resolve.
  t.true(await isSettled(loop.run()))
  poll.close()
  for (const timer of [short, long, repeating]) timer.close()
})

test('run() on an idle loop resolves at once', async (t) => {
  const loop = newLoop(t)
  t.true(await isSettled(loop.run()))
  // Unarmed timers, an initialised but unstarted poll and fallthrough handles hold nothing.
  const fifo = fifoFor(t)
  const unarmed = new Timer(loop)
  const poll = new Poll(loop)
  poll.init(fifo.fd)
  const ft = new Timer(loop, { fallthrough: true })
  ft.set(() => {}, 1000, 0)
  t.true(await isSettled(loop.run()))
  t.is(await loop.run(), undefined)
  for (const handle of [unarmed, poll, ft]) handle.close()
})

test('wakeup() runs onWakeup(loop) on the JS thread', async (t) => {
  let arg: unknown
  let calls = 0
  let mainThread = false
  const loop = newLoop(t, {
    onWakeup: (l: unknown) => {
      arg = l
      calls++
      mainThread = isMainThread
    },
  })
  loop.wakeup()
  t.true(await waitFor(() => calls > 0), 'onWakeup never ran')
  t.is(arg, loop)
  t.true(mainThread)
})

test('many wakeup() calls coalesce, with at least one onWakeup after the last call', async (t) => {
  let calls = 0
  const loop = newLoop(t, { onWakeup: () => calls++ })
  for (let i = 0; i < 1000; i++) loop.wakeup()
  t.true(await waitFor(() => calls >= 1), 'no onWakeup after 1000 wakeup() calls')
  await sleep(50)
  t.true(calls >= 1 && calls < 1000, `${calls} onWakeup calls for 1000 wakeup() calls`)

  // Each round: a burst of calls after the previous onWakeup, then at least one more onWakeup.
  for (let round = 0; round < 20; round++) {
    const before = calls
    for (let i = 0; i <= round; i++) loop.wakeup()
    t.true(await waitFor(() => calls > before, 2000), `round ${round}: no onWakeup after the last wakeup()`)
  }
})

test('wakeup() from inside onWakeup brings another onWakeup', async (t) => {
  let calls = 0
  const loop = newLoop(t, {
    onWakeup: (l: Loop) => {
      if (++calls < 5) l.wakeup()
    },
  })
  loop.wakeup()
  t.true(await waitFor(() => calls >= 5), `only ${calls} onWakeup calls`)
  await sleep(30)
  t.is(calls, 5)
})

test('wakeup() without onWakeup is harmless, and does not hold run()', async (t) => {
  const loop = newLoop(t)
  t.notThrows(() => loop.wakeup())
  t.true(await isSettled(loop.run()))
  await sleep(10)
})

test('iterationNumber is a number that grows', async (t) => {
  const loop = newLoop(t)
  const first = loop.iterationNumber
  t.is(typeof first, 'number')
  t.true(Number.isInteger(first) && first >= 0)
  const timer = new Timer(loop)
  let ticks = 0
  timer.set(() => ticks++, 1, 1)
  t.true(await waitFor(() => ticks >= 5))
  timer.close()
  const later = loop.iterationNumber
  t.is(typeof later, 'number')
  t.true(later > first, `iterationNumber went from ${first} to ${later} over 5 timer expiries`)
  loop.close()
  t.is(typeof loop.iterationNumber, 'number')
  t.true(loop.iterationNumber >= later)
})

test('after close(): new handles and wakeup() throw ERR_LOOP_CLOSED, run() resolves, close() again is a no-op', async (t) => {
  const loop = new Loop({ onWakeup: () => {} })
  loop.close()
  expectLoopClosed(t, () => new Timer(loop), 'new Timer(loop)')
  expectLoopClosed(t, () => new Timer(loop, { fallthrough: true }), 'new Timer(loop, { fallthrough })')
  expectLoopClosed(t, () => new Poll(loop), 'new Poll(loop)')
  expectLoopClosed(t, () => loop.wakeup(), 'loop.wakeup()')
  t.true(await isSettled(loop.run()))
  t.notThrows(() => loop.close())
  t.notThrows(() => loop.close())
  t.true(await isSettled(loop.run()))
})

test('close() resolves a pending run()', async (t) => {
  const loop = new Loop()
  armedTimer(loop, () => {}, 10_000, 0)
  const run = loop.run()
  t.false(await isSettled(run))
  loop.close()
  t.not(await within(run, 1000), 'timeout')
})

test('methods of handles created before close() are harmless no-ops', async (t) => {
  const loop = new Loop()
  const fifo = fifoFor(t)
  let calls = 0
  const armed = armedTimer(loop, () => calls++, 1, 1)
  const unarmed = new Timer(loop)
  const started = new Poll(loop)
  started.init(fifo.fd)
  started.start(READABLE | WRITABLE, () => calls++)
  started.stop()
  started.start(READABLE, () => calls++)
  const initialised = new Poll(loop)
  initialised.init(fifo.fd)
  const bare = new Poll(loop)
  const closedBefore = new Timer(loop)
  closedBefore.close()

  loop.close()

  for (const timer of [armed, unarmed, closedBefore]) {
    t.notThrows(() => timer.set(() => calls++, 1, 0), 'timer.set')
    t.notThrows(() => timer.set(() => calls++, 1, 1), 'timer.set repeating')
    t.notThrows(() => timer.set(() => calls++, 0, 0), 'timer.set disarm')
    t.notThrows(() => timer.close(), 'timer.close')
    t.notThrows(() => timer.close(), 'timer.close twice')
    t.notThrows(() => {
      timer.ext = 1
    })
  }
  for (const poll of [started, initialised, bare]) {
    t.notThrows(() => poll.init(fifo.fd), 'poll.init')
    t.notThrows(() => poll.start(READABLE, () => calls++), 'poll.start')
    t.notThrows(() => poll.change(WRITABLE), 'poll.change')
    t.notThrows(() => poll.stop(), 'poll.stop')
    t.notThrows(() => poll.close(), 'poll.close')
    t.notThrows(() => poll.close(), 'poll.close twice')
    t.is(typeof poll.fd, 'number')
    t.is(typeof poll.events, 'number')
  }
  fifo.write('readable')
  await sleep(40)
  t.is(calls, 0, 'a handle of a closed loop ran its callback')
  t.true(await isSettled(loop.run()))
})

test.serial('armed timers and started polls of a closed loop never fire, even when already queued', async (t) => {
  const loop = new Loop()
  const fifo = fifoFor(t)
  let calls = 0
  armedTimer(loop, () => calls++, 1, 0)
  armedTimer(loop, () => calls++, 1, 1)
  armedTimer(loop, () => calls++, 30, 0)
  const poll = new Poll(loop)
  poll.init(fifo.fd)
  poll.start(READABLE, () => calls++)
  fifo.write('ready')
  busyWait(20) // the loop thread reports the expiries and the readable fd meanwhile
  loop.close()
  await sleep(60)
  t.is(calls, 0)
})

test('closing a loop from inside one of its callbacks drops the rest of the batch', async (t) => {
  const loop = new Loop()
  const order: string[] = []
  const timers = ['a', 'b', 'c'].map((name) =>
    armedTimer(
      loop,
      () => {
        order.push(name)
        loop.close()
      },
      1,
      0,
    ),
  )
  busyWait(15) // all three expire in one batch
  t.true(await waitFor(() => order.length > 0))
  await sleep(30)
  t.deepEqual(order, ['a'])
  t.true(await isSettled(loop.run()))
  for (const timer of timers) t.notThrows(() => timer.close())
})

test('the maxPendingBytes option is validated', (t) => {
  for (const ok of [64 * 1024, 8 * 1024 * 1024, 2 ** 40]) {
    t.notThrows(() => new Loop({ maxPendingBytes: ok }).close(), `maxPendingBytes ${ok}`)
  }
  for (const bad of [1, 0, -1, 64 * 1024 - 1, 2 ** 40 + 1, 1.5 * 1024 * 1024 + 0.5, Infinity, NaN]) {
    const err: any = t.throws(() => new Loop({ maxPendingBytes: bad }), { instanceOf: RangeError }, `maxPendingBytes ${bad}`)
    t.is(err?.code, 'ERR_OUT_OF_RANGE')
    t.regex(err?.message ?? '', /maxPendingBytes/)
  }
  for (const bad of ['a', '65536', null, {}, 65536n]) {
    const err: any = t.throws(() => new (looseClass(Loop))({ maxPendingBytes: bad }), { instanceOf: TypeError })
    t.is(err?.code, 'ERR_INVALID_ARG_TYPE')
    t.regex(err?.message ?? '', /maxPendingBytes/)
  }
  const err: any = t.throws(() => new (looseClass(Loop))({ onWakeup: 'x' }), { instanceOf: TypeError })
  t.is(err?.code, 'ERR_INVALID_ARG_TYPE')
  t.regex(err?.message ?? '', /onWakeup/)
})

test('a loop with the smallest maxPendingBytes still delivers everything', async (t) => {
  const loop = newLoop(t, { maxPendingBytes: 64 * 1024 })
  // 5000 timers due at once: more records (16 bytes each) than 64 KiB holds undelivered.
  const count = 5000
  let fired = 0
  const timers: Timer[] = []
  for (let i = 0; i < count; i++) {
    timers.push(armedTimer(loop, () => fired++, 1, 0))
  }
  t.not(await within(loop.run(), 10_000), 'timeout')
  t.is(fired, count)
  for (const timer of timers) timer.close()
})

// API.md "Bad input": no sequence of JS calls leaks native memory or file descriptors. This runs
// test/fixtures/loop-resources.js in its own process (with --expose-gc) so the counts are clean.
test.serial('loop.close() frees the loop thread and its file descriptors', async (t) => {
  const result = await runFixture('loop-resources.js', [], 20_000, ['--expose-gc'])
  t.is(result.code, 0, result.stderr)
  const report = lastJson(result.stdout)
  t.is(report.fired, 0)
  t.is(report.during.loopThreads, 0, 'close() returned before its loop thread ended')
  t.is(report.after.loopThreads, 0)
  t.true(
    report.after.fds <= report.before.fds + 2,
    `${report.count} closed loops left ${report.after.fds - report.before.fds} fds open (${report.before.fds} → ${report.after.fds}), even after GC`,
  )
})

test('the loop thread runs as SCHED_BATCH (it does not preempt the JS thread on a shared core)', (t) => {
  const loop = newLoop(t)
  t.truthy(loop)
  // /proc/<pid>/task/<tid>/stat field 41 is the scheduling policy; SCHED_BATCH is 3.
  const policies = fs
    .readdirSync('/proc/self/task')
    .filter((tid) => fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === 'usockets-loop')
    .map((tid) => {
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[41 - 3])
    })
  t.true(policies.length >= 1, 'a usockets-loop thread exists')
  t.true(policies.every((policy) => policy === 3), `policies: ${policies}`)
})
