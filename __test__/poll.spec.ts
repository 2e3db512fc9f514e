import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Worker } from 'node:worker_threads'

import test from 'ava'

import { type HandleOptions, Loop, Poll, READABLE, WRITABLE } from '..'

import { busyWait, type Fifo, fifoFor, isSettled, newLoop, sleep, type Teardown, waitFor, within } from './helpers/util'

/** A fresh loop and FIFO (both closed when the test ends), and a poll of that loop on the FIFO. */
function fifoPoll(t: Teardown, options?: HandleOptions): { loop: Loop; fifo: Fifo; poll: Poll } {
  const loop = newLoop(t)
  const fifo = fifoFor(t)
  const poll = new Poll(loop, options)
  poll.init(fifo.fd)
  return { loop, fifo, poll }
}

/**
 * Starts `poll` (READABLE) counting its callbacks, then makes `fifo` readable (writes `data`) and
 * keeps this thread busy for `busyMs`, so that the loop thread queues a report meanwhile.
 */
function startWithQueuedReport(poll: Poll, fifo: Fifo, data: string, busyMs: number): { calls: number } {
  const counter = { calls: 0 }
  poll.start(READABLE, () => counter.calls++)
  fifo.write(data)
  busyWait(busyMs)
  return counter
}

test('the constants are the documented numbers', (t) => {
  t.is(READABLE, 1)
  t.is(WRITABLE, 2)
})

test('init() of a regular file or a directory throws EPERM', (t) => {
  const loop = newLoop(t)
  const file = fs.openSync(__filename, 'r')
  const dir = fs.openSync(os.tmpdir(), 'r')
  t.teardown(() => {
    fs.closeSync(file)
    fs.closeSync(dir)
  })
  for (const fd of [file, dir]) {
    const poll = new Poll(loop)
    const err = t.throws(() => poll.init(fd))
    t.is((err as any)?.code, 'EPERM')
    t.true(err instanceof Error)
    // Nothing half-initialised: start() still says there is no fd.
    t.is((t.throws(() => poll.start(READABLE, () => {})) as any)?.code, 'ERR_POLL_NOT_INITIALIZED')
    poll.close()
  }
})

test('init() of a closed fd throws EBADF', (t) => {
  const loop = newLoop(t)
  const poll = new Poll(loop)
  // Opened and closed in one synchronous block: no other code of this process runs in between.
  const fd = fs.openSync(__filename, 'r')
  fs.closeSync(fd)
  const err = t.throws(() => poll.init(fd))
  t.is((err as any)?.code, 'EBADF')
  const far = t.throws(() => poll.init(2 ** 30))
  t.is((far as any)?.code, 'EBADF')
  poll.close()
})

test('start() before init() throws ERR_POLL_NOT_INITIALIZED', (t) => {
  const loop = newLoop(t)
  const poll = new Poll(loop)
  const err = t.throws(() => poll.start(READABLE, () => {}))
  t.is((err as any)?.code, 'ERR_POLL_NOT_INITIALIZED')
  t.true(err instanceof Error)
  poll.close()
})

test('start(READABLE) fires with READABLE once the fd has data', async (t) => {
  const { fifo, poll } = fifoPoll(t)
  const calls: Array<{ arg: unknown; events: number; data: string }> = []
  poll.start(READABLE, (arg: unknown, events: number) => {
    calls.push({ arg, events, data: fifo.readAll().toString() })
  })
  await sleep(40)
  t.is(calls.length, 0, 'an empty FIFO was reported readable')
  fifo.write('hello')
  t.true(await waitFor(() => calls.length > 0), 'no callback after the write')
  t.is(calls[0].arg, poll)
  t.is(calls[0].events, READABLE)
  t.is(calls[0].data, 'hello')
  await sleep(40)
  t.is(calls.length, 1, 'the drained FIFO was reported again')
  poll.stop()
  poll.close()
})

test('a poll constructed without a loop runs on Loop.default()', async (t) => {
  const fifo = fifoFor(t)
  const poll = new Poll()
  t.teardown(() => poll.close())
  poll.init(fifo.fd)
  let data = ''
  poll.start(READABLE, () => (data += fifo.readAll().toString()))
  fifo.write('default')
  t.true(await waitFor(() => data === 'default'))
  poll.stop()
})

test('delivery is level-triggered: unread data fires again, drained data stops', async (t) => {
  const { fifo, poll } = fifoPoll(t)
  let calls = 0
  const seen: number[] = []
  poll.start(READABLE, (_p: unknown, events: number) => {
    seen.push(events)
    if (++calls === 5) t.is(fifo.readAll().toString(), 'x')
  })
  fifo.write('x')
  t.true(await waitFor(() => calls >= 5), `only ${calls} callbacks for unread data`)
  await sleep(50)
  t.is(calls, 5, 'the poll kept firing after its callback drained the fd')
  t.true(seen.every((events) => events === READABLE))
  // And it fires again for new data.
  fifo.write('y')
  t.true(await waitFor(() => calls >= 6))
  poll.stop()
  poll.close()
})

test('a callback is never re-entered, and every report is true when made', async (t) => {
  const { fifo, poll } = fifoPoll(t)
  let inside = false
  let reentered = false
  const reads: number[] = []
  poll.start(READABLE, () => {
    if (inside) reentered = true
    inside = true
    reads.push(fifo.readAll().length)
    if (reads.length < 3) {
      // More data while the callback runs: it must not be re-entered, and must not be
      // reported twice for it (one report after this callback returns).
      fifo.write('more')
      busyWait(20)
      fifo.write('more')
    }
    inside = false
  })
  fifo.write('first')
  t.true(await waitFor(() => reads.length >= 3))
  await sleep(60)
  t.false(reentered)
  t.deepEqual(reads, [5, 8, 8], 'a report found nothing to read, or one was missing')
  poll.stop()
  poll.close()
})

test('stop() prevents further callbacks, including already queued ones', async (t) => {
  const { loop, fifo, poll: queued } = fifoPoll(t)

  // Queued: the fd became readable and the loop thread reported it while this thread was busy.
  const queuedCalls = startWithQueuedReport(queued, fifo, 'data', 25)
  queued.stop()
  await sleep(50)
  t.is(queuedCalls.calls, 0, 'a report queued before stop() was delivered')
  t.true(await isSettled(loop.run()), 'a stopped poll holds the loop')

  // From its own callback, with data left unread.
  let calls = 0
  queued.start(READABLE, () => {
    calls++
    queued.stop()
  })
  t.true(await waitFor(() => calls >= 1))
  await sleep(50)
  t.is(calls, 1)
  t.is(fifo.readAll().toString(), 'data')
  queued.close()
})

test('a stopped poll can be started again', async (t) => {
  const { fifo, poll } = fifoPoll(t)
  let calls = 0
  poll.start(READABLE, () => {
    calls++
    fifo.readAll()
  })
  fifo.write('a')
  t.true(await waitFor(() => calls === 1))
  poll.stop()
  fifo.write('b')
  await sleep(30)
  t.is(calls, 1)
  let restarted = ''
  poll.start(READABLE, () => (restarted += fifo.readAll().toString()))
  t.true(await waitFor(() => restarted === 'b'), 'data written while stopped was not reported on restart')
  t.is(calls, 1, 'the old callback ran after a restart with a new one')
  poll.stop()
  poll.close()
})

test('change(WRITABLE) reports WRITABLE; change(READABLE) goes back', async (t) => {
  const { poll } = fifoPoll(t)
  const seen: number[] = []
  poll.start(READABLE, (_p: unknown, events: number) => {
    seen.push(events)
    if (events & WRITABLE) poll.change(READABLE)
  })
  await sleep(30)
  t.deepEqual(seen, [], 'an empty FIFO was reported')
  poll.change(WRITABLE)
  t.is(poll.events, WRITABLE)
  t.true(await waitFor(() => seen.length >= 1))
  t.is(seen[0], WRITABLE)
  t.is(poll.events, READABLE)
  await sleep(40)
  t.deepEqual(seen, [WRITABLE], 'still reported writable after change(READABLE)')
  poll.stop()
  poll.close()
})

test('a report queued before change() only carries events of the new mask', async (t) => {
  const { fifo, poll } = fifoPoll(t)
  fifo.write('r')
  const seen: number[] = []
  poll.start(READABLE, (_p: unknown, events: number) => {
    seen.push(events)
    poll.stop()
  })
  busyWait(20) // the READABLE report is queued
  poll.change(WRITABLE)
  t.true(await waitFor(() => seen.length > 0))
  await sleep(20)
  t.deepEqual(seen, [WRITABLE], 'READABLE was reported after the mask became WRITABLE')
  poll.close()
})

test('a poll for both events reports the ready subset', async (t) => {
  const { fifo, poll } = fifoPoll(t)
  fifo.write('z')
  let events = -1
  poll.start(READABLE | WRITABLE, (_p: unknown, ready: number) => {
    events = ready
    poll.stop()
  })
  t.true(await waitFor(() => events !== -1))
  t.is(events, READABLE | WRITABLE)
  t.is(fifo.readAll().toString(), 'z')

  // Only writable once drained.
  events = -1
  poll.start(READABLE | WRITABLE, (_p: unknown, ready: number) => {
    events = ready
    poll.stop()
  })
  t.true(await waitFor(() => events !== -1))
  t.is(events, WRITABLE)
  poll.close()
})

test('poll.fd, poll.events and poll.ext', (t) => {
  const loop = newLoop(t)
  const fifo = fifoFor(t)
  const poll = new Poll(loop)
  t.is(poll.ext, undefined)
  poll.init(fifo.fd)
  t.is(poll.fd, fifo.fd)
  poll.start(READABLE, () => {})
  t.is(poll.events, READABLE)
  poll.change(READABLE | WRITABLE)
  t.is(poll.events, READABLE | WRITABLE)
  poll.change(WRITABLE)
  t.is(poll.events, WRITABLE)
  const value = { any: 'thing' }
  poll.ext = value
  t.is(poll.ext, value)
  poll.ext = 7
  t.is(poll.ext, 7)
  t.is(new Poll(loop).ext, undefined, 'ext is per poll')
  poll.stop()
  t.is(poll.fd, fifo.fd, 'stop() forgot the fd')
  poll.close()
  t.is(poll.ext, 7)
})

test('the poll never closes the fd', async (t) => {
  const loop = newLoop(t)
  const fifo = fifoFor(t)

  const a = new Poll(loop)
  a.init(fifo.fd)
  a.start(READABLE, () => {})
  a.stop()
  a.close()
  t.notThrows(() => fs.fstatSync(fifo.fd))

  // close() of a started poll, and a poll closed by its loop.
  const b = new Poll(loop)
  b.init(fifo.fd)
  b.start(READABLE | WRITABLE, () => {})
  b.close()
  t.notThrows(() => fs.fstatSync(fifo.fd))

  const other = new Loop()
  const c = new Poll(other)
  c.init(fifo.fd)
  c.start(READABLE, () => {})
  other.close()
  await sleep(20)
  t.notThrows(() => fs.fstatSync(fifo.fd))
  t.true(fs.fstatSync(fifo.fd).isFIFO())
  // And the fd still works.
  fifo.write('still open')
  t.is(fifo.readAll().toString(), 'still open')
})

test('a closed poll never fires, and close() is idempotent', async (t) => {
  const { loop, fifo, poll } = fifoPoll(t)
  const counter = startWithQueuedReport(poll, fifo, 'q', 20)
  poll.close()
  await sleep(40)
  t.is(counter.calls, 0)
  t.notThrows(() => poll.close())
  t.notThrows(() => poll.stop())
  t.notThrows(() => poll.start(READABLE, () => counter.calls++))
  t.notThrows(() => poll.change(WRITABLE))
  await sleep(30)
  t.is(counter.calls, 0)
  t.true(await isSettled(loop.run()))
})

test('a started poll holds run() until stop()', async (t) => {
  const { loop, poll } = fifoPoll(t)
  poll.start(READABLE, () => {})
  const run = loop.run()
  t.false(await isSettled(run))
  await sleep(30)
  t.false(await isSettled(run))
  poll.stop()
  t.not(await within(run, 1000), 'timeout')
  poll.close()
})

test('a fallthrough poll does not hold run()', async (t) => {
  const { loop, fifo, poll } = fifoPoll(t, { fallthrough: true })
  let data = ''
  poll.start(READABLE, () => (data += fifo.readAll().toString()))
  t.true(await isSettled(loop.run()))
  fifo.write('ft')
  t.true(await waitFor(() => data === 'ft'), 'a fallthrough poll did not fire')
  poll.close()
})

test('polls of one loop on different fds fire independently', async (t) => {
  const loop = newLoop(t)
  const fifos = [fifoFor(t), fifoFor(t), fifoFor(t)]
  const got = ['', '', '']
  const polls = fifos.map((fifo, i) => {
    const poll = new Poll(loop)
    poll.init(fifo.fd)
    poll.start(READABLE, (p: unknown) => {
      t.is(p, poll)
      got[i] += fifo.readAll().toString()
    })
    return poll
  })
  fifos[2].write('two')
  fifos[0].write('zero')
  t.true(await waitFor(() => got[0] === 'zero' && got[2] === 'two'))
  await sleep(20)
  t.is(got[1], '')
  for (const poll of polls) poll.close()
})

test('FIFO helper sanity: the path is a FIFO in the temp dir', (t) => {
  const fifo = fifoFor(t)
  t.true(fs.statSync(fifo.path).isFIFO())
  t.is(path.dirname(fifo.path), os.tmpdir())
})

test('no readiness is lost while data keeps arriving from another thread', async (t) => {
  const { fifo, poll } = fifoPoll(t)
  let received = 0
  let emptyReports = 0
  poll.start(READABLE, () => {
    const n = fifo.readAll().length
    if (n === 0) emptyReports++
    received += n
  })
  // A writer thread: 3000 small writes, with short pauses, racing the loop's reports.
  const writer = new Worker(
    `
    const fs = require('node:fs')
    const { parentPort, workerData } = require('node:worker_threads')
    const pause = new Int32Array(new SharedArrayBuffer(4))
    let sent = 0
    for (let i = 0; i < 3000; i++) {
      const chunk = Buffer.alloc(1 + (i * 7919) % 97, 0x61)
      for (;;) {
        try { fs.writeSync(workerData.fd, chunk); break }
        catch (err) { if (err.code !== 'EAGAIN') throw err; Atomics.wait(pause, 0, 0, 1) }
      }
      sent += chunk.length
      if (i % 16 === 0) Atomics.wait(pause, 0, 0, 1)
    }
    parentPort.postMessage(sent)
    `,
    { eval: true, workerData: { fd: fifo.fd } },
  )
  const sent = await new Promise<number>((resolve, reject) => {
    writer.once('message', resolve)
    writer.once('error', reject)
  })
  t.true(await waitFor(() => received >= sent, 5000), `received ${received} of ${sent} bytes: a readiness change was lost`)
  t.is(received, sent)
  t.is(emptyReports, 0, 'the poll was reported readable with nothing to read')
  poll.stop()
  poll.close()
  await writer.terminate()
})
