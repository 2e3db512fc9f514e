// Socket options: TCP keep-alive (seconds on the fd, not milliseconds), TCP_NODELAY, and the
// abortive close. The kernel's view of a socket's options is read with getsockopt through a
// spec-only accessor (Symbol.for('usockets-rs.tcpOptions')) and, independently, with `ss`.
import { spawnSync } from 'node:child_process'

import test from 'ava'

import type { Socket, SocketContextOptions } from '..'

import { Tracker, newContext, nodeConnect, once, tmpSocketPath } from './helpers/net'
import { loose } from './helpers/util'

const tcpOptions = Symbol.for('usockets-rs.tcpOptions')
/** What the binding's tcpOptions reports (undefined for Unix or closed sockets). */
interface TcpOptions {
  keepAlive: boolean
  keepAliveIdleSeconds: number
  keepAliveIntervalSeconds: number
  keepAliveProbes: number
  noDelay: boolean
}
const optionsOf = (socket: Socket) => (socket as unknown as Record<symbol, () => TcpOptions>)[tcpOptions]()

test('context option keepAlive applies to accepted and connected sockets: SO_KEEPALIVE, TCP_KEEPIDLE in seconds, 10 s x 3 probes', async (t) => {
  const { ctx } = newContext(t, { keepAlive: { initialDelaySeconds: 30 } })
  const tracker = new Tracker(ctx)
  const listener = ctx.listen('127.0.0.1', 0)
  ctx.connect('127.0.0.1', listener.port)
  await tracker.wait('open', undefined, 5000, 1)
  for (const socket of tracker.sockets()) {
    t.deepEqual(optionsOf(socket), { keepAlive: true, keepAliveIdleSeconds: 30, keepAliveIntervalSeconds: 10, keepAliveProbes: 3, noDelay: true })
  }
  // ss shows the armed keep-alive timer of both ends, due within the 30 s (a delay passed in
  // milliseconds would show as hours).
  const ss = spawnSync('ss', ['-tonH', 'state', 'established', `( sport = :${listener.port} or dport = :${listener.port} )`], { encoding: 'utf8' })
  t.is(ss.status, 0, `ss (iproute2) is needed here: ${ss.error}`)
  const timers = [...ss.stdout.matchAll(/timer:\(keepalive,([\d.]+)(min|sec|ms)/g)].map(([, n, unit]) => Number(n) * (unit === 'min' ? 60 : unit === 'ms' ? 0.001 : 1))
  t.is(timers.length, 2, ss.stdout)
  t.true(timers.every((seconds) => seconds > 20 && seconds <= 30), `keep-alive timers ${timers} s`)
})

test('setKeepAlive and setNoDelay change the fd and return the socket; Unix and closed sockets: nothing to do', async (t) => {
  const { ctx } = newContext(t)
  const tracker = new Tracker(ctx)
  const listener = ctx.listen('127.0.0.1', 0)
  await nodeConnect(t, listener.port)
  const { socket } = await tracker.wait('open')
  t.false(optionsOf(socket).keepAlive, 'off unless asked for')
  t.is(socket.setKeepAlive(true), socket)
  t.like(optionsOf(socket), { keepAlive: true, keepAliveIdleSeconds: 60 })
  socket.setKeepAlive(true, 7)
  t.like(optionsOf(socket), { keepAlive: true, keepAliveIdleSeconds: 7 })
  socket.setKeepAlive(false)
  t.like(optionsOf(socket), { keepAlive: false })
  t.is(socket.setNoDelay(false), socket)
  t.like(optionsOf(socket), { noDelay: false })
  socket.setNoDelay()
  t.like(optionsOf(socket), { noDelay: true })

  const path = tmpSocketPath(t)
  ctx.listenUnix(path)
  ctx.connectUnix(path)
  const unix = (await tracker.wait('open', undefined, 5000, 2)).socket
  t.is(unix.setKeepAlive(true, 5).setNoDelay(false), unix, 'TCP options mean nothing on a Unix socket')
  socket.close()
  t.is(socket.setKeepAlive(true, 5), socket, 'a closed socket: a no-op')
})

test('setKeepAlive, setNoDelay and the keepAlive option refuse bad arguments, naming them', (t) => {
  const { ctx } = newContext(t)
  const socket = loose(ctx.connect('127.0.0.1', 9))
  const cases: Array<[() => unknown, typeof TypeError, string]> = [
    [() => socket.setKeepAlive('yes'), TypeError, 'enable'],
    [() => socket.setKeepAlive(true, 0), RangeError, 'initialDelaySeconds'],
    [() => socket.setKeepAlive(true, 1.5), RangeError, 'initialDelaySeconds'],
    [() => socket.setKeepAlive(true, 40000), RangeError, 'initialDelaySeconds'],
    [() => socket.setNoDelay(1), TypeError, 'noDelay'],
    [() => newContext(t, { keepAlive: 5 } as unknown as SocketContextOptions), TypeError, 'options.keepAlive'],
    [() => newContext(t, { keepAlive: { initialDelaySeconds: 0 } }), RangeError, 'options.keepAlive.initialDelaySeconds'],
  ]
  for (const [fn, type, name] of cases) {
    const err = t.throws(fn, { instanceOf: type })
    t.true(err?.message.includes(`"${name}"`), err?.message)
  }
  socket.close()
})

/** Either end of the loopback connection between ports `a` and `b` that ss lists (every state but closed). */
function connectionsBetween(a: number, b: number): string[] {
  const filter = `( sport = :${a} and dport = :${b} ) or ( sport = :${b} and dport = :${a} )`
  const ss = spawnSync('ss', ['-tanH', filter], { encoding: 'utf8' })
  if (ss.status !== 0) throw new Error(`ss (iproute2) is needed here: ${ss.error}`)
  return ss.stdout.split('\n').filter((line) => line.trim() !== '')
}

test('terminate(): the peer sees a reset, onClose runs before it returns', async (t) => {
  let closedInside = false
  const { ctx } = newContext(t)
  const tracker = new Tracker(ctx, { close: () => (closedInside = true) })
  const listener = ctx.listen('127.0.0.1', 0)
  const peer = await nodeConnect(t, listener.port)
  const { socket } = await tracker.wait('open')
  socket.terminate()
  t.true(closedInside, 'onClose ran inside terminate()')
  t.true(socket.isClosed)
  const err = await once<NodeJS.ErrnoException>(peer, 'error')
  t.is(err.code, 'ECONNRESET')
  socket.terminate()
  t.is(tracker.count('close'), 1, 'a second terminate is a no-op')
})

test('terminate() with data still queued drops it: no orderly close waits to send it, the connection is gone at once', async (t) => {
  const { ctx } = newContext(t)
  const tracker = new Tracker(ctx)
  const listener = ctx.listen('127.0.0.1', 0)
  const peer = await nodeConnect(t, listener.port)
  peer.pause() // what we send stays queued on our side
  const { socket } = await tracker.wait('open')
  socket.send(Buffer.alloc(8 << 20))
  t.true(socket.bufferedAmount > 0)
  socket.terminate()
  // An orderly close would leave our end in FIN-WAIT (the data first) and the peer's in
  // ESTABLISHED; a reset removes both ends.
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.deepEqual(connectionsBetween(peer.localPort ?? -1, listener.port), [], 'no end of the connection is left')
  peer.destroy()
})
