'use strict'
// Every public method and accessor called with random argument values (undefined, null, NaN,
// -1, 2**53, huge strings, strings with NUL, objects, Symbols, Buffers, functions, and the
// library's own handles of every kind, open and closed, of this loop and another) on open and
// closed handles. Bars: the process never crashes; every throw is a TypeError, a RangeError or
// an Error with a string `code`; afterwards no loop thread is left and the socket descriptors
// are back to where they started. Each round builds a fresh set of handles (a loop, timers, a
// poll, plain and TLS contexts with a listener and a connected pair), calls at random, closes
// everything, then calls at random on the closed handles. Env: STRESS_API_CALLS (200000),
// STRESS_API_SEED (random; printed, so a failure can be replayed).

const crypto = require('node:crypto')
const usockets = require('../..')
const { loopThreads } = require('../fixtures/lib')
const { Report, fixture, settle, sleep, socketFds } = require('./common')

const { Loop, Timer, Poll, SocketContext } = usockets
const CALLS = Number(process.env.STRESS_API_CALLS ?? 200000)
const SEED = Number(process.env.STRESS_API_SEED ?? crypto.randomInt(2 ** 31))
const CALLS_PER_ROUND = 2000
const CLOSED_CALLS_PER_ROUND = 500
const MAX_ARGS = 4

/** mulberry32: a small seeded generator, so that a failing run can be replayed. */
function generator(seed) {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const random = generator(SEED)
const pick = (list) => list[Math.floor(random() * list.length)]

const HUGE = 'x'.repeat(1 << 20)
const PLAIN_VALUES = [
  undefined,
  null,
  NaN,
  -1,
  0,
  1,
  1.5,
  -0,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  -(2 ** 53),
  Infinity,
  -Infinity,
  10n,
  true,
  false,
  '',
  'a',
  '0',
  '127.0.0.1',
  '127.0.0.1\0',
  '[::1]',
  '::1',
  'localhost',
  'a\0b',
  '\u{1F600}',
  HUGE,
  Symbol('fuzz'),
  {},
  [],
  [1, 2, 3],
  { key: 'not a key', cert: 42 },
  { tls: true },
  { ext: 1, servername: 'a\0b' },
  Object.create(null),
  new Proxy({}, { get: () => 7 }),
  Buffer.alloc(0),
  Buffer.from('data'),
  Buffer.alloc(70000),
  new Uint8Array(8),
  new Float64Array(2),
  new DataView(new ArrayBuffer(4)),
  new ArrayBuffer(16),
  () => {},
  function named() {
    return 1
  },
  new Date(),
  /regex/,
  new Error('an error'),
]

/** Every method and accessor name of `value`'s prototype chain below Object.prototype. */
function membersOf(value) {
  const members = new Map()
  for (let proto = Object.getPrototypeOf(value); proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      if (name === 'constructor' || members.has(name)) continue
      const descriptor = Object.getOwnPropertyDescriptor(proto, name)
      members.set(name, typeof descriptor.value === 'function' ? 'method' : 'accessor')
    }
  }
  return [...members]
}

function acceptable(err) {
  return err instanceof TypeError || err instanceof RangeError || (err instanceof Error && typeof err.code === 'string')
}

class Fuzzer {
  constructor(report) {
    this.report = report
    this.calls = 0
    this.throws = 0
    this.unexpected = new Map()
    this.handles = []
  }

  /** One call of `name` on `target` with random arguments; records a throw of the wrong kind. */
  call(target, label, name, kind) {
    const args = Array.from({ length: Math.floor(random() * (MAX_ARGS + 1)) }, () => this.value())
    this.calls++
    try {
      if (kind === 'method') {
        const result = target[name](...args)
        // A promise (Loop#run) must settle with an acceptable error, if any.
        if (result instanceof Promise) result.catch((err) => this.check(err, `${label}.${name}() rejected`))
      } else if (random() < 0.5) {
        void target[name]
      } else {
        target[name] = args[0]
      }
    } catch (err) {
      this.throws++
      this.check(err, `${label}.${name}`, args)
    }
  }

  check(err, where, args = []) {
    // A string with a NUL can name no host or file: it must be refused as an argument, not
    // reach a name lookup or a system call (whose errors carry a `syscall`).
    const nulRefusedLate = err?.syscall !== undefined && args.some((a) => typeof a === 'string' && a.includes('\0'))
    if (acceptable(err) && !nulRefusedLate) return
    const what = `${where}: ${err?.constructor?.name ?? typeof err} ${String(err?.message ?? err).slice(0, 120)}`
    this.unexpected.set(what, (this.unexpected.get(what) ?? 0) + 1)
  }

  value() {
    // A third of the arguments are the library's own handles: of the right kind, the wrong
    // kind, closed ones, another loop's.
    return this.handles.length > 0 && random() < 0.33 ? pick(this.handles).value : pick(PLAIN_VALUES)
  }

  /** `count` random calls on random members of the given handles (and of the module itself). */
  run(targets, count) {
    const menus = targets.map(({ label, value }) => ({ label, value, members: membersOf(value) }))
    menus.push({
      label: 'module',
      value: usockets,
      members: Object.keys(usockets)
        .filter((name) => typeof usockets[name] === 'function' && !/^[A-Z]/.test(name))
        .map((name) => [name, 'method']),
    })
    for (const cls of [Loop, Timer, Poll, SocketContext]) {
      menus.push({ label: cls.name, value: cls, members: Object.getOwnPropertyNames(cls).filter((n) => typeof cls[n] === 'function').map((n) => [n, 'method']) })
    }
    for (let i = 0; i < count; i++) {
      const menu = pick(menus)
      if (menu.members.length === 0) continue
      const [name, kind] = pick(menu.members)
      this.call(menu.value, menu.label, name, kind)
    }
  }
}

/** A fresh loop with one handle of every kind, and a connected pair on each of a plain and a TLS context. */
async function buildHandles() {
  const loop = new Loop()
  const other = new Loop()
  const handles = [
    { label: 'Loop', value: loop },
    { label: 'otherLoop', value: other },
    { label: 'Timer', value: new Timer(loop) },
    { label: 'Poll', value: new Poll(loop) },
    { label: 'otherTimer', value: new Timer(other) },
  ]
  const serverTls = { key: fixture('server.key'), cert: fixture('server.pem') }
  for (const [label, serverOptions, clientOptions] of [
    ['plain', {}, {}],
    ['tls', { tls: serverTls }, { tls: { ca: fixture('ca.pem') } }],
  ]) {
    const server = new SocketContext(loop, serverOptions)
    const client = new SocketContext(loop, clientOptions)
    const opened = []
    const bothOpen = new Promise((resolve) => {
      for (const ctx of [server, client]) {
        ctx.onOpen((socket) => {
          opened.push(socket)
          if (opened.length === 2) resolve()
        })
        ctx.onData(() => {})
        ctx.onClose(() => {})
      }
    })
    const listener = server.listen('127.0.0.1', 0)
    client.connect('127.0.0.1', listener.port, { servername: 'localhost' })
    const waited = await Promise.race([bothOpen.then(() => true), sleep(5000).then(() => false)])
    if (!waited) throw new Error(`the ${label} pair never opened`)
    handles.push(
      { label: `${label}Server`, value: server },
      { label: `${label}Client`, value: client },
      { label: `${label}Child`, value: server.createChild() },
      { label: `${label}Listener`, value: listener },
      { label: `${label}Connected`, value: opened.find((s) => s.context === client) },
      { label: `${label}Accepted`, value: opened.find((s) => s.context === server) },
    )
  }
  handles.push({ label: 'otherContext', value: new SocketContext(other) })
  return { loop, other, handles }
}

async function main() {
  const report = new Report('api-fuzz')
  const fuzzer = new Fuzzer(report)
  const socketsBefore = socketFds()
  const started = performance.now()
  let rounds = 0
  while (fuzzer.calls < CALLS) {
    const { loop, other, handles } = await buildHandles()
    fuzzer.handles = handles
    fuzzer.run(handles, CALLS_PER_ROUND)
    // Let the loop threads act on whatever the calls asked for (writes, closes, timers).
    await sleep(20)
    for (const { value } of handles) {
      try {
        value.close()
      } catch (err) {
        fuzzer.check(err, 'teardown close')
      }
    }
    loop.close()
    other.close()
    fuzzer.run(handles, CLOSED_CALLS_PER_ROUND)
    rounds++
  }
  // Calls may have closed the default loop or opened handles on it: close it to let go.
  try {
    Loop.default().close()
  } catch (err) {
    fuzzer.check(err, 'Loop.default().close')
  }
  await settle()
  let loopsLeft = loopThreads()
  for (let i = 0; i < 50 && loopsLeft > 0; i++) {
    await sleep(100)
    loopsLeft = loopThreads()
  }
  const socketsAfter = socketFds()
  for (const [what, count] of fuzzer.unexpected) report.check(false, `${what} (x${count})`)
  report.check(loopsLeft === 0, `${loopsLeft} loop threads left`)
  report.check(socketsAfter <= socketsBefore, `socket descriptors ${socketsBefore} -> ${socketsAfter}`)
  report.set({
    seed: SEED,
    rounds,
    calls: fuzzer.calls,
    throws: fuzzer.throws,
    seconds: Math.round((performance.now() - started) / 100) / 10,
  })
  report.finish()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
