import test, { type ExecutionContext } from 'ava'

import { Loop, Timer, Poll, READABLE } from '..'

import { type Loose, lastJson, loose, looseClass, newLoop, rangeError, runFixture, sleep, typeError, waitFor } from './helpers/util'

const cb = () => {}

// The calls below pass wrong types on purpose: views of the classes and handles that take any
// arguments.
const LooseLoop = looseClass(Loop)
const LooseTimer = looseClass(Timer)
const LoosePoll = looseClass(Poll)

/** A fresh loop with a timer and a poll on it, all closed when the test ends. */
function loopTimerPoll(t: ExecutionContext): { loop: Loop; timer: Loose<Timer>; poll: Loose<Poll> } {
  const loop = newLoop(t)
  const timer = loose(new Timer(loop))
  const poll = loose(new Poll(loop))
  t.teardown(() => {
    timer.close()
    poll.close()
  })
  return { loop, timer, poll }
}

test('wrong types throw TypeError ERR_INVALID_ARG_TYPE naming the argument', (t) => {
  const { loop, timer, poll } = loopTimerPoll(t)

  typeError(t, () => timer.set('x', 1), 'callback')
  typeError(t, () => timer.set(undefined, 1), 'callback')
  typeError(t, () => timer.set(cb, 'a'), 'ms')
  typeError(t, () => timer.set(cb), 'ms')
  typeError(t, () => timer.set(cb, 1n), 'ms')
  typeError(t, () => timer.set(cb, 1, 'b'), 'repeatMs')
  typeError(t, () => timer.set(cb, 1, null), 'repeatMs')

  typeError(t, () => new LooseLoop({ maxPendingBytes: 'a' }), 'options.maxPendingBytes')
  typeError(t, () => new LooseLoop({ spinMicroseconds: '50' }), 'options.spinMicroseconds')
  typeError(t, () => new LooseLoop({ onWakeup: 1 }), 'options.onWakeup')
  typeError(t, () => new LooseLoop('options'), 'options')

  typeError(t, () => new LooseTimer(42), 'loop')
  typeError(t, () => new LooseTimer({}), 'loop')
  typeError(t, () => new LooseTimer('loop'), 'loop')
  typeError(t, () => new LoosePoll(42), 'loop')
  typeError(t, () => new LooseTimer(loop, { fallthrough: 'no' }), 'options.fallthrough')
  typeError(t, () => new LoosePoll(loop, { fallthrough: 0 }), 'options.fallthrough')
  typeError(t, () => new LoosePoll(loop, 'options'), 'options')

  typeError(t, () => poll.init('3'), 'fd')
  typeError(t, () => poll.init(), 'fd')
  typeError(t, () => poll.start('x', cb), 'events')
  typeError(t, () => poll.start(READABLE, 'x'), 'callback')
  typeError(t, () => poll.change('x'), 'events')
})

test('out-of-range numbers throw RangeError ERR_OUT_OF_RANGE naming the argument', (t) => {
  const { timer, poll } = loopTimerPoll(t)

  rangeError(t, () => timer.set(cb, -1), 'ms')
  rangeError(t, () => timer.set(cb, 1.5), 'ms')
  rangeError(t, () => timer.set(cb, NaN), 'ms')
  rangeError(t, () => timer.set(cb, Infinity), 'ms')
  rangeError(t, () => timer.set(cb, 1, -1), 'repeatMs')
  rangeError(t, () => timer.set(cb, 1, 0.5), 'repeatMs')

  rangeError(t, () => poll.start(4, cb), 'events')
  rangeError(t, () => poll.start(-1, cb), 'events')
  rangeError(t, () => poll.start(1.5, cb), 'events')
  rangeError(t, () => poll.change(8), 'events')
  rangeError(t, () => poll.init(-1), 'fd')
  rangeError(t, () => poll.init(2.5), 'fd')

  rangeError(t, () => new LooseLoop({ maxPendingBytes: 1 }), 'options.maxPendingBytes')
  rangeError(t, () => new LooseLoop({ maxPendingBytes: -65536 }), 'options.maxPendingBytes')
  rangeError(t, () => new LooseLoop({ spinMicroseconds: 10_001 }), 'options.spinMicroseconds')
  rangeError(t, () => new LooseLoop({ spinMicroseconds: 0.5 }), 'options.spinMicroseconds')
})

test('a call that throws on bad input changes nothing', async (t) => {
  const loop = newLoop(t)
  const timer = new Timer(loop)
  let calls = 0
  timer.set(() => calls++, 10, 0)
  t.throws(() => timer.set(cb, -1, 0))
  t.throws(() => loose(timer).set('x', 0, 0))
  t.throws(() => timer.set(cb, 5, 1.5))
  t.true(await waitFor(() => calls === 1), 'a rejected set() disarmed or replaced the timer')
  await sleep(30)
  t.is(calls, 1)
  timer.close()
})

test.serial('a throwing callback is an uncaught exception, and the loop keeps working', async (t) => {
  const result = await runFixture('uncaught.js', ['handled'])
  t.false(result.timedOut, 'the fixture hung')
  t.is(result.code, 0, `stderr: ${result.stderr}`)
  const { counts, progressed, messages, nonErrors } = lastJson(result.stdout)
  t.is(nonErrors, 0, 'a reported exception was not the Error that was thrown')
  // Every throw was reported, once.
  const thrown = counts.thrower + counts.poll + counts.wakeup + 1
  t.is(counts.uncaught, thrown, JSON.stringify({ counts, messages }))
  t.is(messages['boom from timer'], counts.thrower)
  t.is(messages['boom from poll'], counts.poll)
  t.is(messages['boom from onWakeup'], counts.wakeup)
  t.is(messages['boom first in batch'], 1)
  t.is(counts.afterThrowInBatch, 1, 'a timer expiring with a throwing one did not run')
  // Still making progress after ~100 ms of throwing callbacks.
  for (const key of ['thrower', 'counter', 'poll', 'wakeup']) {
    t.true(progressed[key] >= 3, `${key} made ${progressed[key]} calls in the last 60 ms: ${JSON.stringify(progressed)}`)
  }
})

test.serial('without a handler, a throwing callback crashes the process like any Node callback', async (t) => {
  const result = await runFixture('uncaught.js', ['unhandled'])
  t.false(result.timedOut, 'the fixture hung')
  t.is(result.code, 1)
  t.true(result.stderr.includes('boom from timer'), result.stderr)
  t.false(result.stdout.includes('still alive'))
})
