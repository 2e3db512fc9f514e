// Closed handles, closed loops, re-entrant closes and bad arguments: every call is a harmless
// no-op or throws a clear error; nothing crashes and no callback fires twice (API.md "Bad input").
import net from 'node:net'

import test from 'ava'

import { LISTEN_EXCLUSIVE_PORT, ListenSocket, Loop, Socket, SocketContext } from '..'

import { Tracker, closedPort, listenAndConnect, newContext, nodeConnect, nodeServer, once, tmpSocketPath, until } from './helpers/net'
import { isSettled, loose, looseClass, newLoop, rangeError, sleep, typeError } from './helpers/util'

/** Calls every Socket method and getter; returns what each returned (or the code it threw). */
function exerciseSocket(socket: Socket, ctx: SocketContext): Record<string, unknown> {
  const calls: Record<string, () => unknown> = {
    write: () => socket.write('x'),
    writeMore: () => socket.write(Buffer.from('x'), true),
    write2: () => socket.write2('a', 'b'),
    send: () => socket.send('x'),
    flush: () => socket.flush(),
    shutdown: () => socket.shutdown(),
    shutdownRead: () => socket.shutdownRead(),
    timeout: () => socket.timeout(1),
    timeoutOff: () => socket.timeout(0),
    longTimeout: () => socket.longTimeout(1),
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    close: () => socket.close(),
    closeWithCode: () => socket.close(5, 'again'),
    adopt: () => ctx.adoptSocket(socket) === socket,
    link: () => ctx.link(socket) === socket,
    fd: () => socket.fd,
    isClosed: () => socket.isClosed,
    isEstablished: () => socket.isEstablished,
    bufferedAmount: () => socket.bufferedAmount,
    isTls: () => socket.isTls,
    alpnProtocol: () => socket.alpnProtocol,
    servername: () => socket.servername,
    peerCertificate: () => socket.peerCertificate,
  }
  const result: Record<string, unknown> = {}
  for (const [name, call] of Object.entries(calls)) {
    try {
      result[name] = call()
    } catch (err: any) {
      result[name] = `threw ${err?.code ?? err}`
    }
  }
  return result
}

const CLOSED_SOCKET = {
  write: 0,
  writeMore: 0,
  write2: 0,
  send: false,
  flush: undefined,
  shutdown: undefined,
  shutdownRead: undefined,
  timeout: undefined,
  timeoutOff: undefined,
  longTimeout: undefined,
  pause: undefined,
  resume: undefined,
  close: undefined,
  closeWithCode: undefined,
  adopt: true,
  link: true,
  fd: -1,
  isClosed: true,
  isEstablished: false,
  bufferedAmount: 0,
  isTls: false,
  alpnProtocol: undefined,
  servername: undefined,
  peerCertificate: undefined,
}

test('a closed Socket: every method is a no-op (also inside its onClose); addresses stay readable; no second onClose', async (t) => {
  const { ctx } = newContext(t)
  const other = ctx.createChild()
  const otherTracker = new Tracker(other)
  let insideOnClose: Record<string, unknown> | undefined
  const tracker = new Tracker(ctx, {
    close(socket) {
      insideOnClose = exerciseSocket(socket, other)
    },
  })
  const { listener, client } = await listenAndConnect(t, ctx)
  const socket = (await tracker.wait('open')).socket
  const remotePort = socket.remotePort
  const peerClosed = once(client, 'close')
  socket.close(1, 'first')
  t.deepEqual(insideOnClose, CLOSED_SOCKET)
  t.deepEqual(exerciseSocket(socket, other), CLOSED_SOCKET)
  t.is(socket.remoteAddress, '127.0.0.1')
  t.is(socket.remotePort, remotePort)
  t.is(socket.localPort, listener.port)
  t.is(socket.localAddress, '127.0.0.1')
  t.is(socket.isShutDown, false)
  await peerClosed
  await sleep(100)
  t.deepEqual(tracker.events(socket), ['open', 'close'])
  t.deepEqual(tracker.first('close')!.args, [1, 'first'])
  t.deepEqual(otherTracker.log, [])
})

test('a Socket closed by the peer (reset): every method is a no-op; nothing fires afterwards', async (t) => {
  const { ctx } = newContext(t)
  const server = await nodeServer(t)
  const tracker = new Tracker(ctx)
  const { socket, peer } = await tracker.connectTo(server)
  peer.resetAndDestroy()
  await tracker.wait('close')
  t.deepEqual(exerciseSocket(socket, ctx), CLOSED_SOCKET)
  await sleep(100)
  t.deepEqual(tracker.events(socket), ['open', 'close'])
})

test('a Socket whose connect failed: every method is a no-op; nothing more fires', async (t) => {
  const { ctx } = newContext(t)
  const port = await closedPort()
  let inside: Record<string, unknown> | undefined
  const tracker = new Tracker(ctx, {
    connectError(socket) {
      inside = exerciseSocket(socket, ctx)
    },
  })
  const socket = ctx.connect('127.0.0.1', port)
  await tracker.wait('connectError')
  t.deepEqual(inside, CLOSED_SOCKET)
  t.deepEqual(exerciseSocket(socket, ctx), CLOSED_SOCKET)
  await sleep(100)
  t.deepEqual(tracker.events(socket), ['connectError'])
})

test('a closed ListenSocket: close() again is a no-op; port, host, context, isClosed stay readable', async (t) => {
  const { ctx } = newContext(t)
  const listener = ctx.listen('127.0.0.1', 0)
  const port = listener.port
  listener.close()
  listener.close()
  t.true(listener.isClosed)
  t.is(listener.port, port)
  t.is(listener.host, '127.0.0.1')
  t.is(listener.context, ctx)
  // The port is free at once.
  const again = ctx.listen('127.0.0.1', port, LISTEN_EXCLUSIVE_PORT)
  t.is(again.port, port)
  again.close()
})

test('a closed SocketContext stays usable: close() again, set handlers, listen, connect, createChild, adopt', async (t) => {
  const { ctx } = newContext(t)
  const server = await nodeServer(t)
  ctx.close()
  ctx.close()
  const tracker = new Tracker(ctx, {
    data(socket, data) {
      socket.write(data)
    },
  })
  const { listener, client } = await listenAndConnect(t, ctx)
  client.write('ping')
  t.is((await once<Buffer>(client, 'data')).toString(), 'ping')
  const outgoing = ctx.connect('127.0.0.1', server.port)
  await tracker.wait('open', outgoing)
  const child = ctx.createChild()
  t.is(child.adoptSocket(outgoing), outgoing)
  ctx.close()
  t.true(listener.isClosed)
  t.false(outgoing.isClosed, 'the adopted socket belongs to the child now')
  child.close()
  t.true(outgoing.isClosed)
  ctx.close()
})

test('a closed Loop: listen / listenUnix / connect / connectUnix / new SocketContext / createChild throw ERR_LOOP_CLOSED; every other method is a no-op', async (t) => {
  const loop = new Loop()
  const ctx = new SocketContext(loop)
  const server = await nodeServer(t)
  const tracker = new Tracker(ctx)
  const listener = ctx.listen('127.0.0.1', 0)
  const unixPath = tmpSocketPath(t)
  const unixListener = ctx.listenUnix(unixPath)
  const client = await nodeConnect(t, listener.port)
  const outgoing = ctx.connect('127.0.0.1', server.port)
  await until(() => tracker.count('open') === 2, 'two opens')
  const accepted = tracker.sockets().find((s) => s !== outgoing)
  if (accepted === undefined) return t.fail('no accepted socket')
  const clientClosed = once(client, 'close')
  loop.close()
  t.is(tracker.count('close'), 2)
  loop.close()
  t.true(await isSettled(loop.run()))

  const loopClosed = { code: 'ERR_LOOP_CLOSED' }
  t.throws(() => ctx.listen('127.0.0.1', 0), loopClosed)
  t.throws(() => ctx.listen(null, 0), loopClosed)
  t.throws(() => ctx.listenUnix(unixPath), loopClosed)
  t.throws(() => ctx.connect('127.0.0.1', server.port), loopClosed)
  t.throws(() => ctx.connectUnix(unixPath), loopClosed)
  t.throws(() => new SocketContext(loop), loopClosed)
  t.throws(() => ctx.createChild(), loopClosed)
  t.throws(() => loop.wakeup(), loopClosed)

  t.is(ctx.onData(() => {}), ctx)
  t.notThrows(() => ctx.close())
  t.is(ctx.loop, loop)
  t.false(ctx.isTls)
  for (const l of [listener, unixListener]) {
    t.true(l.isClosed)
    t.notThrows(() => l.close())
  }
  t.is(listener.port > 0, true)
  for (const socket of [accepted, outgoing]) t.deepEqual(exerciseSocket(socket, ctx), CLOSED_SOCKET)
  await clientClosed
  await sleep(50)
  t.is(tracker.count('close'), 2)
  tracker.assertLifecycle(t)
})

test('loop.close() with a connecting socket: its connect ends in exactly one onConnectError before close() returns', async (t) => {
  const loop = new Loop()
  const ctx = new SocketContext(loop)
  const server = await nodeServer(t)
  const tracker = new Tracker(ctx)
  const connecting = ctx.connect('localhost', server.port)
  loop.close()
  t.true(connecting.isClosed)
  t.deepEqual(tracker.events(connecting), ['connectError'])
  t.true(tracker.first('connectError')!.args[1] instanceof Error)
  await sleep(100)
  t.deepEqual(tracker.events(connecting), ['connectError'])
})

test('re-entrant closes from inside handlers: loop.close() in onData, context.close() in onClose, socket.close() in onConnectError', async (t) => {
  const server = await nodeServer(t)
  const refused = await closedPort()

  // loop.close() inside onData: the socket gets its onClose (once), the loop is closed.
  {
    const loop = newLoop(t)
    const ctx = new SocketContext(loop)
    const tracker = new Tracker(ctx, {
      data() {
        loop.close()
      },
    })
    const { client } = await listenAndConnect(t, ctx)
    for (let i = 0; i < 20; i++) client.write(Buffer.alloc(4096, i))
    await tracker.wait('close')
    await sleep(50)
    const socket = tracker.sockets()[0]
    t.deepEqual(tracker.events(socket), ['open', 'data', 'close'])
    t.throws(() => ctx.listen('127.0.0.1', 0), { code: 'ERR_LOOP_CLOSED' })
  }

  // context.close() (and loop.close()) inside onClose of a context.close().
  {
    const loop = newLoop(t)
    const ctx = new SocketContext(loop)
    let nested = 0
    const tracker = new Tracker(ctx, {
      close() {
        nested++
        ctx.close()
        if (nested === 2) loop.close()
      },
    })
    const { listener } = await listenAndConnect(t, ctx)
    await nodeConnect(t, listener.port)
    ctx.connect('127.0.0.1', server.port)
    await until(() => tracker.count('open') === 3, 'three opens')
    ctx.close()
    t.is(tracker.count('close'), 3)
    await sleep(50)
    t.is(tracker.count('close'), 3)
    tracker.assertLifecycle(t)
  }

  // listener.close() and socket.close() inside onOpen; socket.close() and context.close() inside onConnectError.
  {
    const { ctx } = newContext(t)
    // Listening before the handlers exist: onOpen may run before the connect's promise settles.
    const listener = ctx.listen('127.0.0.1', 0)
    const tracker = new Tracker(ctx, {
      open(socket) {
        listener.close()
        socket.close()
      },
      connectError(socket) {
        socket.close()
        ctx.close()
      },
    })
    await nodeConnect(t, listener.port)
    await tracker.wait('close')
    t.true(listener.isClosed)
    const socket = ctx.connect('127.0.0.1', refused)
    await tracker.wait('connectError')
    await sleep(50)
    t.deepEqual(tracker.events(socket), ['connectError'])
    tracker.assertLifecycle(t)
  }
})

test('listen / connect from an onClose that loop.close() fires: throws ERR_LOOP_CLOSED, or the new handles are closed too', async (t) => {
  const server = await nodeServer(t)
  // Whether a handle made during loop.close() is caught by it depends on its slot: try 10 loops.
  const leaked: string[] = []
  for (let round = 0; round < 10; round++) {
    const loop = newLoop(t)
    const ctx = new SocketContext(loop)
    const made: Array<Socket | ListenSocket> = []
    const tracker = new Tracker(ctx, {
      close() {
        try {
          made.push(ctx.listen('127.0.0.1', 0))
        } catch (err: any) {
          t.is(err.code, 'ERR_LOOP_CLOSED')
        }
        try {
          made.push(ctx.connect('127.0.0.1', server.port))
        } catch (err: any) {
          t.is(err.code, 'ERR_LOOP_CLOSED')
        }
      },
    })
    ctx.connect('127.0.0.1', server.port)
    await tracker.wait('open')
    loop.close()
    for (const handle of made) {
      if (!handle.isClosed) leaked.push(`round ${round}: ${handle.constructor.name} left open`)
      else if (handle instanceof Socket && tracker.count('connectError', handle) !== 1) {
        leaked.push(`round ${round}: the connect never ended (${tracker.events(handle).join(',')})`)
      }
    }
  }
  t.deepEqual(leaked, [], 'handles made during loop.close() are neither refused nor closed')
})

// --- bad arguments ---------------------------------------------------------------------------------

test('bad arguments: TypeError / RangeError naming the argument, on open and on closed handles', async (t) => {
  const { loop, ctx } = newContext(t)
  const server = await nodeServer(t)
  const tracker = new Tracker(ctx)
  const open = ctx.connect('127.0.0.1', server.port)
  await tracker.wait('open')
  const closed = ctx.connect('127.0.0.1', server.port)
  closed.close()

  // Wrong types on purpose: the views below take any arguments.
  const LooseSocketContext = looseClass(SocketContext)
  const looseCtx = loose(ctx)
  typeError(t, () => new LooseSocketContext(42), 'loop')
  typeError(t, () => new LooseSocketContext({}), 'loop')
  typeError(t, () => new LooseSocketContext(loop, 5), 'options')
  rangeError(t, () => new LooseSocketContext(loop, { highWaterMark: 0 }), 'options.highWaterMark')
  rangeError(t, () => new LooseSocketContext(loop, { highWaterMark: 1.5 }), 'options.highWaterMark')
  typeError(t, () => new LooseSocketContext(loop, { highWaterMark: '1' }), 'options.highWaterMark')
  rangeError(t, () => looseCtx.createChild({ highWaterMark: -1 }), 'options.highWaterMark')

  for (const setter of ['onOpen', 'onData', 'onWritable', 'onEnd', 'onTimeout', 'onLongTimeout', 'onClose', 'onConnectError'] as const) {
    typeError(t, () => looseCtx[setter]('x'), 'callback')
    typeError(t, () => looseCtx[setter](), 'callback')
  }

  rangeError(t, () => looseCtx.listen('x', -1), 'port')
  rangeError(t, () => looseCtx.listen('127.0.0.1', 65536), 'port')
  rangeError(t, () => looseCtx.listen('127.0.0.1', 1.5), 'port')
  rangeError(t, () => looseCtx.listen('127.0.0.1', NaN), 'port')
  typeError(t, () => looseCtx.listen('127.0.0.1', '80'), 'port')
  typeError(t, () => looseCtx.listen(42, 0), 'host')
  typeError(t, () => looseCtx.listen({}, 0), 'host')
  rangeError(t, () => looseCtx.listen('127.0.0.1', 0, 2), 'options')
  typeError(t, () => looseCtx.listen('127.0.0.1', 0, 'exclusive'), 'options')
  typeError(t, () => looseCtx.listenUnix(''), 'path')
  typeError(t, () => looseCtx.listenUnix(42), 'path')
  rangeError(t, () => looseCtx.listenUnix(tmpSocketPath(t), 7), 'options')

  typeError(t, () => looseCtx.connect('', 80), 'host')
  typeError(t, () => looseCtx.connect(null, 80), 'host')
  typeError(t, () => looseCtx.connect(127001, 80), 'host')
  rangeError(t, () => looseCtx.connect('127.0.0.1', 0), 'port')
  rangeError(t, () => looseCtx.connect('127.0.0.1', 65536), 'port')
  typeError(t, () => looseCtx.connect('127.0.0.1', '80'), 'port')
  typeError(t, () => looseCtx.connect('127.0.0.1', 80, 'opts'), 'options')
  typeError(t, () => looseCtx.connect('127.0.0.1', 80, { sourceHost: 5 }), 'options.sourceHost')
  typeError(t, () => looseCtx.connectUnix(''), 'path')
  typeError(t, () => looseCtx.connectUnix(undefined), 'path')
  typeError(t, () => looseCtx.connectUnix('/tmp/x.sock', 5), 'options')

  typeError(t, () => looseCtx.adoptSocket({}), 'socket')
  typeError(t, () => looseCtx.adoptSocket(null), 'socket')
  typeError(t, () => looseCtx.link('socket'), 'socket')

  for (const socket of [loose(open), loose(closed)]) {
    typeError(t, () => socket.write(123), 'data')
    typeError(t, () => socket.write({}), 'data')
    typeError(t, () => socket.write(null), 'data')
    typeError(t, () => socket.write('x', 'yes'), 'msgMore')
    typeError(t, () => socket.write2(1, 'x'), 'header')
    typeError(t, () => socket.write2('x', null), 'payload')
    typeError(t, () => socket.send(5), 'data')
    rangeError(t, () => socket.timeout(-1), 'seconds')
    rangeError(t, () => socket.timeout(1.5), 'seconds')
    rangeError(t, () => socket.timeout(Infinity), 'seconds')
    typeError(t, () => socket.timeout('1'), 'seconds')
    typeError(t, () => socket.timeout(), 'seconds')
    rangeError(t, () => socket.longTimeout(-1), 'minutes')
    rangeError(t, () => socket.longTimeout(0.5), 'minutes')
    typeError(t, () => socket.longTimeout(null), 'minutes')
    typeError(t, () => socket.close('x'), 'code')
  }
  // Nothing above reached the open socket.
  t.false(open.isClosed)
  t.is(tracker.count('close', open), 0)

  const err = t.throws(() => new SocketContext(loop, { tls: { key: 'not a key' } }))
  t.is(typeof (err as any)?.code, 'string')
  t.throws(() => new (looseClass(Socket))(), { instanceOf: TypeError })
})

test('sourceHost that is not an IP address throws a clear error at connect()', (t) => {
  const { ctx } = newContext(t)
  const err: any = t.throws(() => ctx.connect('127.0.0.1', 80, { sourceHost: 'not-an-ip' }))
  t.true(err instanceof TypeError || typeof err?.code === 'string', String(err))
  t.true(String(err?.message).includes('sourceHost'))
})

test('ListenSocket is not constructible from JS (like Socket): a forged one cannot close another listener', async (t) => {
  const { ctx } = newContext(t)
  const tracker = new Tracker(ctx)
  const real = ctx.listen('127.0.0.1', 0)
  // Forging listen sockets with made-up ids must throw (or at least not touch real handles).
  for (const id of [0, 1, 2, 3, 4, 2 ** 26, 2 ** 26 + 1, 2 ** 26 + 2]) {
    try {
      new (looseClass(ListenSocket))(ctx, id, 'forged', 1).close()
    } catch {
      // expected: a TypeError
    }
  }
  t.false(real.isClosed)
  const client = net.connect(real.port, '127.0.0.1')
  client.on('error', () => {})
  t.teardown(() => {
    client.destroy()
  })
  const outcome = await new Promise<string>((resolve) => {
    client.once('connect', () => resolve('connected'))
    client.once('error', (e: any) => resolve(e.code))
  })
  t.is(outcome, 'connected', 'the real listener stopped accepting')
  if (outcome === 'connected') await tracker.wait('open')
  t.throws(() => new (looseClass(ListenSocket))(ctx, 0, 'forged', 1), { instanceOf: TypeError })
})
