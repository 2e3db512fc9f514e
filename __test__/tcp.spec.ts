// TCP sockets against real node:net peers on loopback: our listen + a node:net client (server
// side), our connect + a node:net server (client side). API.md "SocketContext" and "Socket".
import net from 'node:net'
import { inspect } from 'node:util'

import test from 'ava'

import { LISTEN_DEFAULT, LISTEN_EXCLUSIVE_PORT, ListenSocket, Loop, Socket, SocketContext, TIMEOUT_GRANULARITY } from '..'

import {
  Tracker,
  blackholePort,
  closedPort,
  collect,
  deferred,
  listenAndConnect,
  newContext,
  addressesOf,
  pausedNodeServer,
  nodeConnect,
  nodeServer,
  once,
  randomBytes,
  readAll,
  runNode,
  sha256,
  until,
  withTimeout,
} from './helpers/net'
import { busyWait, isSettled, lastJson, newLoop, sleep } from './helpers/util'

const MiB = 1024 * 1024

// --- onOpen, addresses and ports ----------------------------------------------------------------

const acceptCases: Array<[string | null, string, string]> = [
  ['127.0.0.1', '127.0.0.1', '127.0.0.1'],
  [null, '127.0.0.1', '127.0.0.1'],
  ['', '127.0.0.1', '127.0.0.1'],
  ['::1', '::1', '::1'],
  [null, '::1', '::1'],
  ['', '::1', '::1'],
  ['::', '127.0.0.1', '127.0.0.1'],
]

for (const [listenHost, peerHost, expected] of acceptCases) {
  test(`accept: listen(${JSON.stringify(listenHost)}) + node:net client from ${peerHost}: onOpen(socket, false, '${expected}'), ports and addresses`, async (t) => {
    const { ctx } = newContext(t)
    const opened = deferred<{ socket: Socket; isClient: boolean; remoteAddress: string; isEstablished: boolean; isClosed: boolean; ext: unknown }>()
    const tracker = new Tracker(ctx, {
      open(socket, isClient, remoteAddress) {
        opened.resolve({
          socket,
          isClient,
          remoteAddress,
          isEstablished: socket.isEstablished,
          isClosed: socket.isClosed,
          ext: socket.ext,
        })
      },
      close(socket) {
        // Still readable inside onClose.
        closedView.resolve({ ...addressesOf(socket), isClosed: socket.isClosed })
      },
    })
    const closedView = deferred<Record<string, unknown>>()
    const listener = ctx.listen(listenHost, 0)
    t.true(listener instanceof ListenSocket)
    t.true(listener.port > 0 && listener.port < 65536)
    const client = await nodeConnect(t, listener.port, peerHost)
    const open = await withTimeout(opened.promise, 5000, 'onOpen')
    const socket = open.socket
    t.true(socket instanceof Socket)
    t.is(open.isClient, false)
    t.is(open.remoteAddress, expected)
    t.true(open.isEstablished)
    t.false(open.isClosed)
    t.is(open.ext, undefined)
    t.is(socket.context, ctx)
    t.is(socket.remoteAddress, expected)
    t.is(socket.remotePort, client.localPort!)
    t.is(socket.localPort, listener.port)
    t.is(socket.localPort, client.remotePort!)
    t.is(socket.localAddress, client.remoteAddress!)
    t.is(socket.localAddress, expected)
    t.true(socket.fd >= 0)
    t.false(socket.isTls)

    client.end()
    const view = await withTimeout(closedView.promise, 5000, 'onClose')
    t.deepEqual(view, {
      remoteAddress: expected,
      remotePort: client.localPort,
      localAddress: expected,
      localPort: listener.port,
      isClosed: true,
    })
    const close = tracker.first('close')!
    t.is(close.args[0], 0)
    t.is(close.args[1], undefined)
    t.is(socket.fd, -1)
    tracker.assertLifecycle(t)
  })
}

for (const host of ['127.0.0.1', '::1']) {
  test(`connect: to a node:net server on ${host}: isEstablished false until onOpen(socket, true, '${host}'), ports and addresses`, async (t) => {
    const { ctx } = newContext(t)
    const server = await nodeServer(t, host)
    const opened = deferred<Record<string, unknown>>()
    const closedView = deferred<Record<string, unknown>>()
    const tracker = new Tracker(ctx, {
      open(socket, isClient, remoteAddress) {
        opened.resolve({ isClient, remoteAddress, isEstablished: socket.isEstablished })
      },
      close(socket) {
        closedView.resolve(addressesOf(socket))
      },
    })
    const socket = ctx.connect(host, server.port)
    t.true(socket instanceof Socket)
    t.false(socket.isEstablished)
    t.false(socket.isClosed)
    t.is(socket.context, ctx)
    const peer = await server.next()
    const open = await withTimeout(opened.promise, 5000, 'onOpen')
    t.deepEqual(open, { isClient: true, remoteAddress: host, isEstablished: true })
    t.true(socket.isEstablished)
    t.is(socket.remoteAddress, host)
    t.is(socket.remotePort, server.port)
    t.is(socket.localAddress, peer.remoteAddress!)
    t.is(socket.localPort, peer.remotePort!)

    peer.end()
    const view = await withTimeout(closedView.promise, 5000, 'onClose')
    t.deepEqual(view, { remoteAddress: host, remotePort: server.port, localAddress: peer.remoteAddress, localPort: peer.remotePort })
    t.deepEqual(tracker.events(socket), ['open', 'close'])
  })
}

// --- onData ---------------------------------------------------------------------------------------

test('onData: many small messages arrive in order as non-empty Buffers', async (t) => {
  const { ctx } = newContext(t)
  const tracker = new Tracker(ctx)
  const { client } = await listenAndConnect(t, ctx)
  const expected: string[] = []
  for (let i = 0; i < 2000; i++) {
    const message = `message ${i};`
    expected.push(message)
    client.write(message)
  }
  const socket = (await tracker.wait('open')).socket
  const total = Buffer.byteLength(expected.join(''))
  await until(() => tracker.received(socket).length >= total, 'all messages')
  t.is(tracker.received(socket).toString(), expected.join(''))
  await tracker.closeFromPeer(t, client)
})

test('server-side echo (send) of 8 MiB in chunks arrives intact; every kept onData Buffer keeps its content', async (t) => {
  const { ctx } = newContext(t)
  const kept: Buffer[] = []
  const tracker = new Tracker(ctx, {
    data(socket, data) {
      kept.push(data)
      socket.send(data)
    },
    end(socket) {
      socket.shutdown()
    },
  })
  const { client } = await listenAndConnect(t, ctx)
  const payload = randomBytes(8 * MiB)
  const received = collect(client)
  for (let i = 0; i < payload.length; i += 64 * 1024) client.write(payload.subarray(i, i + 64 * 1024))
  // The client ends only once all came back (see the next test for an end with data in flight).
  await until(() => received.length() >= payload.length, 'the whole echo', 30_000)
  const back = received.bytes()
  t.is(back.length, payload.length)
  t.is(sha256(back), sha256(payload))
  // The Buffers given to onData still hold what arrived, long after their callbacks returned.
  t.true(kept.length > 1)
  t.is(sha256(kept), sha256(payload))
  t.is((await tracker.closeFromPeer(t, client)).args[0], 0)
})

test('shutdown() inside onEnd while send() data is still buffered: the FIN follows all of it (nothing is dropped)', async (t) => {
  const { ctx } = newContext(t)
  const reply = randomBytes(8 * MiB)
  const tracker = new Tracker(ctx, {
    end(socket) {
      socket.send(reply)
      socket.shutdown()
    },
  })
  const { client } = await listenAndConnect(t, ctx)
  const received = readAll(client, 30_000)
  client.end('request')
  const data = await received
  t.is(data.length, reply.length, `the peer got ${data.length} of ${reply.length} bytes before the end`)
  t.is(sha256(data), sha256(reply))
  const close = await tracker.wait('close')
  t.is(close.args[0], 0)
})

test('client-side: send 8 MiB to a node:net echo server with pause/resume flow control; the echo arrives intact', async (t) => {
  const { ctx } = newContext(t)
  const server = await nodeServer(t, '127.0.0.1', (peer) => peer.pipe(peer))
  const payload = randomBytes(8 * MiB)
  const kept: Buffer[] = []
  const tracker = new Tracker(ctx, {
    open(socket) {
      t.false(socket.send(payload), 'send(8 MiB) returns false: more than highWaterMark stays buffered')
      t.true(socket.bufferedAmount >= 64 * 1024)
      socket.shutdown()
      t.true(socket.isShutDown)
    },
    data(_socket, data) {
      kept.push(data)
    },
  })
  ctx.connect('127.0.0.1', server.port)
  const close = await tracker.wait('close', undefined, 30_000)
  t.is(close.args[0], 0)
  t.is(Buffer.concat(kept).length, payload.length)
  t.is(sha256(kept), sha256(payload))
  tracker.assertLifecycle(t)
})

// --- write, write2 ------------------------------------------------------------------------------

test('write: 0 on a connecting socket (nothing is sent), bytes taken once open, 0 after shutdown and after close', async (t) => {
  const { ctx } = newContext(t)
  const server = await nodeServer(t)
  const tracker = new Tracker(ctx)
  const socket = ctx.connect('127.0.0.1', server.port)
  t.is(socket.write('early'), 0)
  t.is(socket.write(Buffer.from('early')), 0)
  t.is(socket.write2('ea', 'rly'), 0)
  const peer = await server.next()
  const received = readAll(peer)
  await tracker.wait('open')
  t.is(socket.write('hello'), 5)
  t.is(socket.write(Buffer.alloc(0)), 0)
  socket.shutdown()
  t.true(socket.isShutDown)
  t.is(socket.write('after shutdown'), 0)
  t.is(socket.write2('after', 'shutdown'), 0)
  t.is((await received).toString(), 'hello')
  peer.end()
  await tracker.wait('close')
  t.is(socket.write('after close'), 0)
  t.is(socket.write2('after', 'close'), 0)
  t.false(socket.send('after close'))
  tracker.assertLifecycle(t)
})

test('write: a string is sent as UTF-8, TypedArrays and DataViews as their bytes; write2 sends header then payload', async (t) => {
  const { ctx } = newContext(t)
  const server = await nodeServer(t)
  const tracker = new Tracker(ctx)
  const { socket, peer } = await tracker.connectTo(server)
  const received = readAll(peer)
  const text = 'héllo wörld € 😀 ✓'
  const expected: Buffer[] = []
  const utf8 = Buffer.from(text, 'utf8')
  t.is(socket.write(text), utf8.length)
  expected.push(utf8)

  const words = new Uint16Array([0x0102, 0x0304, 0x0506])
  t.is(socket.write(words), 6)
  expected.push(Buffer.from(words.buffer))

  const backing = Buffer.from('0123456789')
  t.is(socket.write(new Uint8Array(backing.buffer, backing.byteOffset + 2, 3)), 3) // '234'
  expected.push(Buffer.from('234'))
  t.is(socket.write(new DataView(backing.buffer, backing.byteOffset + 7, 2)), 2) // '78'
  expected.push(Buffer.from('78'))

  t.is(socket.write2('HEADER:', Buffer.from('payload;')), 15)
  expected.push(Buffer.from('HEADER:payload;'))
  t.is(socket.write2(Buffer.from('€'), 'ü'), 5)
  expected.push(Buffer.from('€ü'))
  t.is(socket.write2('', 'only-payload;'), 13)
  expected.push(Buffer.from('only-payload;'))

  t.is(socket.write('more', true), 4)
  socket.flush()
  expected.push(Buffer.from('more'))
  socket.shutdown()
  t.deepEqual(await received, Buffer.concat(expected))
  await tracker.closeFromPeer(t, peer)
})

test('write returns what the kernel took; after a partial write onWritable comes and the peer receives exactly the bytes written', async (t) => {
  const { ctx } = newContext(t)
  const server = await pausedNodeServer(t)
  const payload = randomBytes(32 * MiB)
  const CHUNK = 256 * 1024
  let offset = 0
  let partialWrites = 0
  let outstandingPartial = false
  let spuriousWritable = 0
  let oversized = 0
  const pump = (socket: Socket) => {
    while (offset < payload.length) {
      const chunk = payload.subarray(offset, offset + CHUNK)
      const n = socket.write(chunk)
      if (n > chunk.length || n < 0) oversized++
      offset += n
      if (n < chunk.length) {
        partialWrites++
        outstandingPartial = true
        return
      }
    }
    socket.shutdown()
  }
  const tracker = new Tracker(ctx, {
    open: pump,
    writable(socket) {
      if (!outstandingPartial) spuriousWritable++
      outstandingPartial = false
      pump(socket)
    },
  })
  const { peer } = await tracker.connectTo(server)
  await until(() => partialWrites > 0, 'a partial write')
  // The peer reads nothing yet: no onWritable while the kernel buffers stay full.
  await sleep(200)
  t.is(tracker.count('writable'), 0, 'onWritable while the peer was not reading')
  const writtenBeforeResume = offset
  t.true(writtenBeforeResume < payload.length)
  const received = readAll(peer, 40_000)
  peer.resume()
  const data = await received
  t.is(oversized, 0, 'write returned more than it was given')
  t.true(tracker.count('writable') >= 1)
  t.is(spuriousWritable, 0, 'onWritable without a partial write outstanding')
  t.is(offset, payload.length)
  t.is(data.length, payload.length)
  t.is(sha256(data), sha256(payload))
  await tracker.closeFromPeer(t, peer)
})

// --- send, bufferedAmount, highWaterMark ------------------------------------------------------------

test('send(32 MiB) to a paused peer: false, bufferedAmount >= highWaterMark, write returns 0; onWritable once drained with bufferedAmount 0; every byte in order', async (t) => {
  const { ctx } = newContext(t)
  const server = await pausedNodeServer(t)
  const payload = randomBytes(32 * MiB)
  const writableViews: number[] = []
  let resumed = false
  let writableBeforeResume = 0
  const drained = deferred()
  const tracker = new Tracker(ctx, {
    open(socket) {
      t.true(socket.send(Buffer.from('small')), 'a small send stays below highWaterMark')
      t.false(socket.send(payload))
      t.true(socket.bufferedAmount >= 64 * 1024, `bufferedAmount ${socket.bufferedAmount}`)
      t.true(socket.bufferedAmount <= payload.length + 5)
      t.is(socket.write('x'), 0, 'write while send data is buffered')
      t.is(socket.write2('x', 'y'), 0, 'write2 while send data is buffered')
    },
    writable(socket) {
      if (!resumed) writableBeforeResume++
      writableViews.push(socket.bufferedAmount)
      if (writableViews.length === 1) {
        t.is(socket.write('!'), 1, 'write works again once drained')
        socket.shutdown()
        drained.resolve()
      }
    },
  })
  const { peer } = await tracker.connectTo(server)
  await sleep(300)
  t.is(tracker.count('writable'), 0)
  const received = readAll(peer, 40_000)
  resumed = true
  peer.resume()
  await withTimeout(drained.promise, 40_000, 'onWritable after the drain')
  t.is(writableBeforeResume, 0)
  t.is(writableViews[0], 0, 'bufferedAmount inside the onWritable that reports the drain')
  const data = await received
  t.is(data.length, payload.length + 6)
  t.is(sha256(data), sha256([Buffer.from('small'), payload, Buffer.from('!')]))
  await tracker.closeFromPeer(t, peer)
})

test('send with highWaterMark 1024: every send returns bufferedAmount < highWaterMark; onWritable with 0 buffered once drained', async (t) => {
  const { ctx } = newContext(t, { highWaterMark: 1024 })
  const server = await pausedNodeServer(t)
  const chunks: Buffer[] = []
  const mismatches: string[] = []
  let sawFalse = false
  const drained = deferred<number>()
  const tracker = new Tracker(ctx, {
    open(socket) {
      // Fill the kernel buffers; the first false comes once 1024 bytes wait natively.
      for (let i = 0; i < 4096 && !sawFalse; i++) {
        const chunk = randomBytes(16 * 1024)
        chunks.push(chunk)
        const ok = socket.send(chunk)
        if (ok !== socket.bufferedAmount < 1024) mismatches.push(`send -> ${ok} with bufferedAmount ${socket.bufferedAmount}`)
        if (!ok) sawFalse = true
      }
      // A small send on a full buffer is still taken, and still reports false.
      const tail = Buffer.from('tail')
      chunks.push(tail)
      t.false(socket.send(tail))
      t.is(socket.write('x'), 0)
    },
    writable(socket) {
      if (!drained.settled) {
        drained.resolve(socket.bufferedAmount)
        socket.shutdown()
      }
    },
  })
  const { peer } = await tracker.connectTo(server)
  t.true(sawFalse, 'send never returned false against a paused peer')
  t.deepEqual(mismatches, [])
  const received = readAll(peer, 40_000)
  peer.resume()
  t.is(await withTimeout(drained.promise, 20_000, 'onWritable'), 0)
  t.is(sha256(await received), sha256(chunks))
  await tracker.closeFromPeer(t, peer)
})

test('shutdown() after send: the FIN follows the buffered data', async (t) => {
  const { ctx } = newContext(t)
  const server = await pausedNodeServer(t)
  const payload = randomBytes(4 * MiB)
  const tracker = new Tracker(ctx, {
    open(socket) {
      socket.send(payload)
      socket.shutdown()
      t.true(socket.isShutDown)
      t.false(socket.send('late'), 'send after shutdown takes nothing')
    },
  })
  const { peer } = await tracker.connectTo(server)
  const received = readAll(peer, 20_000)
  await sleep(100)
  peer.resume()
  const data = await received
  t.is(sha256(data), sha256(payload))
  t.is((await tracker.closeFromPeer(t, peer)).args[0], 0)
})

// --- onEnd, shutdown, close ---------------------------------------------------------------------------

test('onEnd with a handler: the socket stays writable after the peer FIN; the reply arrives, then onClose(socket, 0)', async (t) => {
  const { ctx } = newContext(t)
  const tracker = new Tracker(ctx, {
    end(socket) {
      t.false(socket.isClosed)
      t.true(socket.isEstablished)
      t.is(socket.write('reply after end'), 15)
      socket.shutdown()
      t.true(socket.isShutDown)
    },
  })
  const { client } = await listenAndConnect(t, ctx)
  const received = readAll(client)
  client.end('request')
  t.is((await received).toString(), 'reply after end')
  const socket = (await tracker.wait('open')).socket
  const close = await tracker.wait('close')
  t.is(close.args[0], 0)
  t.is(close.args[1], undefined)
  t.deepEqual(tracker.events(socket), ['open', 'data', 'end', 'close'])
  t.is(tracker.received(socket).toString(), 'request')
})

test('onEnd without a handler: the socket is closed, onClose(socket, 0, undefined)', async (t) => {
  const { ctx } = newContext(t)
  const tracker = new Tracker(ctx)
  const { client } = await listenAndConnect(t, ctx)
  client.end('bye')
  const closed = once(client, 'close')
  const close = await tracker.wait('close')
  t.is(close.args[0], 0)
  t.is(close.args[1], undefined)
  t.true(close.socket.isClosed)
  t.deepEqual(tracker.events(close.socket), ['open', 'data', 'close'])
  await closed
})

test('shutdown(): the peer sees the end; once the peer ends too the socket closes by itself with onClose(socket, 0)', async (t) => {
  const { ctx } = newContext(t)
  const server = await nodeServer(t, '127.0.0.1', undefined, {}, { allowHalfOpen: true })
  const tracker = new Tracker(ctx, {
    open(socket) {
      t.false(socket.isShutDown)
      socket.write('request')
      socket.shutdown()
      t.true(socket.isShutDown)
      t.false(socket.isClosed)
      socket.shutdown() // twice: harmless
    },
  })
  const socket = ctx.connect('127.0.0.1', server.port)
  const peer = await server.next()
  peer.setEncoding('utf8')
  let text = ''
  peer.on('data', (chunk: string) => (text += chunk))
  await once(peer, 'end')
  t.is(text, 'request')
  t.false(socket.isClosed, 'half-closed: still open until the peer finishes')
  peer.end('response')
  const close = await tracker.wait('close')
  t.is(close.args[0], 0)
  t.is(close.args[1], undefined)
  t.is(tracker.received(socket).toString(), 'response')
  tracker.assertLifecycle(t)
})

test('close(code, reason): onClose(socket, code, reason) runs before close() returns; close() defaults to (0, undefined)', async (t) => {
  const { ctx } = newContext(t)
  const server = await nodeServer(t)
  const order: string[] = []
  const reason = { why: 'test' }
  const tracker = new Tracker(ctx, {
    close(socket, code, why) {
      order.push(`onClose ${socket.ext} ${code}`)
      t.true(socket.isClosed)
      t.false(socket.isEstablished)
      if (socket.ext === 'a') t.is(why, reason)
      else t.is(why, undefined)
    },
  })
  const a = ctx.connect('127.0.0.1', server.port, { ext: 'a' })
  const b = ctx.connect('127.0.0.1', server.port, { ext: 'b' })
  const peerA = await server.next()
  const peerB = await server.next()
  await tracker.wait('open', a)
  await tracker.wait('open', b)
  const peersClosed = [once(peerA, 'close'), once(peerB, 'close')]
  a.close(4001, reason)
  order.push('a returned')
  b.close()
  order.push('b returned')
  t.deepEqual(order, ['onClose a 4001', 'a returned', 'onClose b 0', 'b returned'])
  a.close(1, 'again')
  t.is(tracker.count('close', a), 1)
  await Promise.all(peersClosed)
  tracker.assertLifecycle(t)
})

test('nothing fires after onClose: close() inside onData while the peer keeps sending and then ends', async (t) => {
  const { ctx } = newContext(t)
  const tracker = new Tracker(ctx, {
    data(socket) {
      socket.close()
    },
    end() {},
  })
  const { client } = await listenAndConnect(t, ctx)
  for (let i = 0; i < 200; i++) client.write(Buffer.alloc(1024, i))
  client.end()
  const close = await tracker.wait('close')
  await once(client, 'close')
  await sleep(200)
  t.deepEqual(tracker.events(close.socket), ['open', 'data', 'close'])
})

test('close() inside onOpen: onClose follows, nothing else', async (t) => {
  const { ctx } = newContext(t)
  const tracker = new Tracker(ctx, {
    open(socket) {
      socket.close(7, 'in open')
    },
    end() {},
  })
  const { client } = await listenAndConnect(t, ctx)
  client.write('data that nobody reads')
  await once(client, 'close')
  await sleep(100)
  const socket = (await tracker.wait('open')).socket
  t.deepEqual(tracker.events(socket), ['open', 'close'])
  t.deepEqual(tracker.first('close')!.args, [7, 'in open'])
})

test('close() on a connecting socket cancels it silently: no onOpen, onClose or onConnectError', async (t) => {
  const { loop, ctx } = newContext(t)
  const server = await nodeServer(t)
  const refused = await closedPort()
  const tracker = new Tracker(ctx)
  const sockets = [
    ctx.connect('127.0.0.1', server.port),
    ctx.connect('localhost', server.port), // still resolving
    ctx.connect('127.0.0.1', refused),
    ctx.connect('no-such-host.invalid', 80),
  ]
  for (const socket of sockets) {
    t.false(socket.isClosed)
    socket.close()
    t.true(socket.isClosed)
    t.false(socket.isEstablished)
    socket.close()
  }
  t.true(await isSettled(loop.run()), 'cancelled connects no longer hold the loop')
  await sleep(500)
  t.deepEqual(tracker.log.map((e) => e.event), [])
})

// --- errors --------------------------------------------------------------------------------------

test('peer reset on an accepted socket: onClose gets a non-zero code and an Error with code ECONNRESET', async (t) => {
  const { ctx } = newContext(t)
  const tracker = new Tracker(ctx)
  const { client } = await listenAndConnect(t, ctx)
  client.write('x')
  await tracker.wait('data')
  client.resetAndDestroy()
  const close = await tracker.wait('close')
  const [code, error] = close.args
  t.not(code, 0)
  t.true(error instanceof Error)
  t.is(error.code, 'ECONNRESET')
  tracker.assertLifecycle(t)
})

test('peer reset on a connected socket: onClose gets a non-zero code and an Error with code ECONNRESET', async (t) => {
  const { ctx } = newContext(t)
  const server = await nodeServer(t)
  const tracker = new Tracker(ctx)
  const { peer } = await tracker.connectTo(server)
  peer.resetAndDestroy()
  const close = await tracker.wait('close')
  t.not(close.args[0], 0)
  t.true(close.args[1] instanceof Error)
  t.is(close.args[1].code, 'ECONNRESET')
  tracker.assertLifecycle(t)
})

test('onConnectError: ECONNREFUSED (111) for a closed port; no onOpen, no onClose', async (t) => {
  const { ctx } = newContext(t)
  const port = await closedPort()
  const tracker = new Tracker(ctx, {
    connectError(socket) {
      t.true(socket.isClosed)
      t.false(socket.isEstablished)
      t.is(socket.ext, 'mine')
    },
  })
  const socket = ctx.connect('127.0.0.1', port, { ext: 'mine' })
  const error = await tracker.wait('connectError')
  t.is(error.socket, socket)
  t.is(error.args[0], 111)
  t.true(error.args[1] instanceof Error)
  t.is(error.args[1].code, 'ECONNREFUSED')
  await sleep(100)
  t.deepEqual(tracker.events(socket), ['connectError'])
  t.true(socket.isClosed)
})

test('onConnectError: ENOTFOUND with a negative code for no-such-host.invalid', async (t) => {
  const { ctx } = newContext(t)
  const tracker = new Tracker(ctx)
  const socket = ctx.connect('no-such-host.invalid', 80)
  const error = await tracker.wait('connectError', socket, 10_000)
  t.true(error.args[0] < 0, `code ${error.args[0]}`)
  t.true(error.args[1] instanceof Error)
  t.is(error.args[1].code, 'ENOTFOUND')
  await sleep(50)
  t.deepEqual(tracker.events(socket), ['connectError'])
})

test('onConnectError: a timeout on a connecting socket gives ETIMEDOUT after 1..5 s (SYNs dropped by a full accept queue)', async (t) => {
  const { ctx } = newContext(t)
  const port = await blackholePort(t)
  const tracker = new Tracker(ctx)
  const socket = ctx.connect('127.0.0.1', port)
  const start = performance.now()
  socket.timeout(1)
  const error = await tracker.wait('connectError', socket, 10_000)
  const elapsed = error.at - start
  t.true(elapsed >= 1000, `fired early: ${elapsed} ms`)
  t.true(elapsed <= 1000 + TIMEOUT_GRANULARITY * 1000 + 750, `fired late: ${elapsed} ms`)
  t.is(error.args[1].code, 'ETIMEDOUT')
  t.is(error.args[0], 110)
  await sleep(100)
  t.deepEqual(tracker.events(socket), ['connectError'])
})

test('exactly one of onOpen / onConnectError per connect (mixed successes and failures)', async (t) => {
  const { ctx } = newContext(t)
  const server = await nodeServer(t)
  const refused = await closedPort()
  const tracker = new Tracker(ctx, {
    open(socket) {
      socket.close()
    },
  })
  const sockets: Socket[] = []
  for (let i = 0; i < 30; i++) {
    const target = i % 3
    if (target === 0) sockets.push(ctx.connect('127.0.0.1', server.port))
    else if (target === 1) sockets.push(ctx.connect('127.0.0.1', refused))
    else sockets.push(ctx.connect('no-such-host.invalid', 80))
  }
  await until(() => sockets.every((s) => s.isClosed), 'every connect to finish', 10_000)
  await sleep(100)
  sockets.forEach((socket, i) => {
    const events = tracker.events(socket)
    if (i % 3 === 0) t.deepEqual(events, ['open', 'close'], `connect #${i}`)
    else t.deepEqual(events, ['connectError'], `connect #${i}`)
  })
})

test("connect('localhost', port) opens when the server listens on 127.0.0.1 only", async (t) => {
  const { ctx } = newContext(t)
  const server = await nodeServer(t, '127.0.0.1')
  const tracker = new Tracker(ctx)
  const socket = ctx.connect('localhost', server.port)
  await server.next()
  const open = await tracker.wait('open', socket)
  t.is(open.args[1], '127.0.0.1')
  t.is(socket.remotePort, server.port)
  t.is(tracker.count('connectError'), 0)
})

// --- listen ----------------------------------------------------------------------------------

test('listen: port 0 is ephemeral; host, context and isClosed; close() stops accepting (refused) while open sockets stay open', async (t) => {
  const { ctx } = newContext(t)
  const tracker = new Tracker(ctx, {
    data(socket, data) {
      socket.write(data)
    },
  })
  const listener = ctx.listen('127.0.0.1', 0)
  t.true(listener.port > 0)
  t.is(listener.host, '127.0.0.1')
  t.is(listener.context, ctx)
  t.false(listener.isClosed)
  const client = await nodeConnect(t, listener.port)
  await tracker.wait('open')
  listener.close()
  t.true(listener.isClosed)
  listener.close()

  const refused = net.connect(listener.port, '127.0.0.1')
  const err: any = await once(refused, 'error')
  t.is(err.code, 'ECONNREFUSED')

  client.write('still open')
  const echoed = await once<Buffer>(client, 'data')
  t.is(echoed.toString(), 'still open')
  client.end()
  await tracker.wait('close')
  t.is(tracker.count('open'), 1)
})

test('listen: LISTEN_EXCLUSIVE_PORT on a taken port throws EADDRINUSE; LISTEN_DEFAULT twice on one port shares it', async (t) => {
  const { ctx } = newContext(t)
  const taken = await nodeServer(t)
  const err1 = t.throws(() => ctx.listen('127.0.0.1', taken.port, LISTEN_EXCLUSIVE_PORT))
  t.is((err1 as any)?.code, 'EADDRINUSE')

  const port = await closedPort()
  const first = ctx.listen('127.0.0.1', port, LISTEN_DEFAULT)
  const second = ctx.listen('127.0.0.1', port)
  t.is(first.port, port)
  t.is(second.port, port)
  const err2 = t.throws(() => ctx.listen('127.0.0.1', port, LISTEN_EXCLUSIVE_PORT))
  t.is((err2 as any)?.code, 'EADDRINUSE')

  const tracker = new Tracker(ctx)
  for (let i = 0; i < 6; i++) await nodeConnect(t, port)
  await until(() => tracker.count('open') === 6, 'six accepts')
  // One of the two closed: the other still accepts on the port.
  first.close()
  await nodeConnect(t, port)
  await until(() => tracker.count('open') === 7, 'an accept by the remaining listener')
  second.close()
  const refused = net.connect(port, '127.0.0.1')
  t.is(((await once(refused, 'error')) as any).code, 'ECONNREFUSED')
})

test('listen failures throw an Error with a code: EADDRINUSE on an exclusive port taken by ourselves, ENOTFOUND for a bad host name', (t) => {
  const { ctx } = newContext(t)
  const listener = ctx.listen('127.0.0.1', 0, LISTEN_EXCLUSIVE_PORT)
  const err = t.throws(() => ctx.listen('127.0.0.1', listener.port, LISTEN_EXCLUSIVE_PORT))
  t.is((err as any)?.code, 'EADDRINUSE')
  const err2 = t.throws(() => ctx.listen('no-such-host.invalid', 0))
  t.is(typeof (err2 as any)?.code, 'string')
  listener.close()
})

// --- connect options -------------------------------------------------------------------------

test('connect sourceHost: the server sees that address (127.0.0.2 and 127.0.0.1)', async (t) => {
  const { ctx } = newContext(t)
  const server = await nodeServer(t)
  const tracker = new Tracker(ctx)
  for (const source of ['127.0.0.2', '127.0.0.1']) {
    const socket = ctx.connect('127.0.0.1', server.port, { sourceHost: source })
    const peer = await server.next()
    t.is(peer.remoteAddress, source)
    await tracker.wait('open', socket)
    t.is(socket.localAddress, source)
    t.is(socket.localPort, peer.remotePort!)
    socket.close()
  }
})

test('connect ext option sets socket.ext at once; it stays through onOpen, onData and onClose', async (t) => {
  const { ctx } = newContext(t)
  const server = await nodeServer(t, '127.0.0.1', (peer) => peer.end('hi'))
  const ext = { user: 'data' }
  const seen: unknown[] = []
  const tracker = new Tracker(ctx, {
    open: (socket) => seen.push(socket.ext),
    data: (socket) => seen.push(socket.ext),
    close: (socket) => seen.push(socket.ext),
  })
  const socket = ctx.connect('127.0.0.1', server.port, { ext })
  t.is(socket.ext, ext)
  await tracker.wait('close')
  t.true(seen.length >= 3)
  t.true(seen.every((value) => value === ext))
  const plain = ctx.connect('127.0.0.1', server.port)
  t.is(plain.ext, undefined)
  plain.ext = 42
  t.is(plain.ext, 42)
  plain.close()
})

// --- timeouts ---------------------------------------------------------------------------------

test('timeout(1) fires onTimeout between 1 and 1 + TIMEOUT_GRANULARITY s, once, without closing; a re-armed timeout fires again', async (t) => {
  const { ctx } = newContext(t)
  const server = await nodeServer(t)
  const armedAt = new Map<Socket, number>()
  const fired: Array<{ ext: string; elapsed: number }> = []
  const tracker = new Tracker(ctx, {
    open(socket) {
      socket.timeout(1)
      armedAt.set(socket, performance.now())
    },
    timeout(socket) {
      fired.push({ ext: socket.ext as string, elapsed: performance.now() - armedAt.get(socket)! })
      t.false(socket.isClosed)
      if (socket.ext === 'rearm' && fired.filter((f) => f.ext === 'rearm').length === 1) {
        socket.timeout(1)
        armedAt.set(socket, performance.now())
      }
    },
  })
  const once1 = ctx.connect('127.0.0.1', server.port, { ext: 'once' })
  const rearm = ctx.connect('127.0.0.1', server.port, { ext: 'rearm' })
  // A server-side (accepted) socket too.
  await listenAndConnect(t, ctx)
  await tracker.wait('timeout', once1, 8000)
  await tracker.wait('timeout', rearm, 14_000, 1)
  await until(() => tracker.count('timeout') >= 4, 'the accepted socket timeout', 8000)
  const late = 1000 + TIMEOUT_GRANULARITY * 1000 + 750
  for (const f of fired) {
    t.true(f.elapsed >= 1000, `${f.ext} fired early: ${f.elapsed} ms`)
    t.true(f.elapsed <= late, `${f.ext} fired late: ${f.elapsed} ms`)
  }
  // One-shot: 'once' does not fire again.
  const firstAt = tracker.first('timeout', once1)!.at
  await until(() => performance.now() - firstAt > TIMEOUT_GRANULARITY * 1000 + 500, 'one more granularity period', 10_000)
  t.is(tracker.count('timeout', once1), 1)
  t.false(once1.isClosed)
  t.is(once1.write('still writable'), 14)
  tracker.assertLifecycle(t)
})

test('timeout(0) disables, a new timeout replaces the old, longTimeout does not fire soon, adoption clears timeouts, a connect timeout does not outlive the connect', async (t) => {
  const { ctx } = newContext(t)
  const child = ctx.createChild()
  const server = await nodeServer(t)
  const tracker = new Tracker(ctx, {
    open(socket) {
      switch (socket.ext) {
        case 'disabled':
          socket.timeout(1)
          socket.timeout(0)
          break
        case 'replaced':
          socket.timeout(1)
          socket.timeout(60)
          break
        case 'long':
          socket.longTimeout(1)
          break
        case 'long-disabled':
          socket.longTimeout(1)
          socket.longTimeout(0)
          break
        case 'adopted':
          socket.timeout(1)
          socket.longTimeout(1)
          child.adoptSocket(socket)
          break
        case 'closed':
          socket.timeout(1)
          socket.close()
          break
      }
    },
  })
  const childTracker = new Tracker(child)
  for (const ext of ['disabled', 'replaced', 'long', 'long-disabled', 'adopted', 'closed']) ctx.connect('127.0.0.1', server.port, { ext })
  // Armed while connecting; the connect completes at once, so it never fires.
  const connectTimeout = ctx.connect('127.0.0.1', server.port, { ext: 'connect-timeout' })
  connectTimeout.timeout(1)
  await until(() => tracker.count('open') === 7, 'seven opens')
  await sleep(1000 + TIMEOUT_GRANULARITY * 1000 + 750)
  t.deepEqual(
    tracker.log.filter((e) => e.event !== 'open').map((e) => `${e.event} ${e.socket.ext}`),
    ['close closed'],
  )
  t.deepEqual(childTracker.log.map((e) => `${e.event} ${e.socket.ext}`), [])
})

// --- pause / resume ---------------------------------------------------------------------------------

test('pause(): no onData while paused; after resume() the data arrives in order', async (t) => {
  const { ctx } = newContext(t)
  const tracker = new Tracker(ctx, {
    open(socket) {
      socket.pause()
    },
  })
  const { client } = await listenAndConnect(t, ctx)
  const socket = (await tracker.wait('open')).socket
  const big = randomBytes(MiB)
  client.write('one,')
  await sleep(50)
  client.write('two,')
  client.write(big)
  client.write('three')
  await sleep(400)
  t.is(tracker.count('data'), 0, 'onData while paused')
  socket.resume()
  const expected = Buffer.concat([Buffer.from('one,two,'), big, Buffer.from('three')])
  await until(() => tracker.received(socket).length >= expected.length, 'the data after resume()')
  t.is(sha256(tracker.received(socket)), sha256(expected))
  // Pause again and resume on the client side of the stream too.
  socket.pause()
  socket.pause()
  client.write('later')
  await sleep(200)
  t.is(tracker.received(socket).length, expected.length)
  socket.resume()
  socket.resume()
  await until(() => tracker.received(socket).length === expected.length + 5, "'later'")
  await tracker.closeFromPeer(t, client)
})

test('pause() inside onData: data (and the end) already read by the loop thread are not delivered until resume()', async (t) => {
  const { ctx } = newContext(t)
  let paused = false
  const whilePaused: string[] = []
  const tracker = new Tracker(ctx, {
    data(socket, data) {
      if (paused) whilePaused.push(`data ${data}`)
      if (data.toString() === 'A') {
        paused = true
        socket.pause()
      }
    },
    end(socket) {
      if (paused) whilePaused.push('end')
      socket.close()
    },
  })
  const { client } = await listenAndConnect(t, ctx)
  const socket = (await tracker.wait('open')).socket
  // Blocking the JS thread lets the loop thread read each write as its own event: 'B' and the
  // end are queued behind 'A' when onData('A') pauses the socket.
  client.write('A')
  busyWait(100)
  client.write('B')
  busyWait(100)
  client.end('C')
  busyWait(100)
  await tracker.wait('data', socket)
  await sleep(300)
  t.deepEqual(whilePaused, [], 'events delivered while the socket was paused')
  paused = false
  socket.resume()
  await tracker.wait('close', socket)
  t.is(tracker.received(socket).toString(), 'ABC')
})

test('shutdownRead(): the next read sees an end of stream: onEnd with a handler (socket still writable), closed without one', async (t) => {
  const { ctx } = newContext(t)
  const tracker = new Tracker(ctx, {
    open(socket) {
      socket.shutdownRead()
    },
    end(socket) {
      t.is(socket.write('written after shutdownRead'), 26)
      socket.close()
    },
  })
  const { client } = await listenAndConnect(t, ctx)
  const received = readAll(client)
  const close = await tracker.wait('close')
  t.deepEqual(tracker.events(close.socket), ['open', 'end', 'close'])
  t.is((await received).toString(), 'written after shutdownRead')

  const { ctx: plain } = newContext(t)
  const plainTracker = new Tracker(plain, {
    open(socket) {
      socket.shutdownRead()
    },
  })
  const plainListener = plain.listen('127.0.0.1', 0)
  await nodeConnect(t, plainListener.port)
  const plainClose = await plainTracker.wait('close')
  t.is(plainClose.args[0], 0)
  t.deepEqual(plainTracker.events(plainClose.socket), ['open', 'close'])
})

test('a slow JS consumer on a loop with a small maxPendingBytes still gets every byte, in order', async (t) => {
  const loop = newLoop(t, { maxPendingBytes: 65536 })
  const ctx = new SocketContext(loop)
  t.teardown(() => ctx.close())
  let largest = 0
  const tracker = new Tracker(ctx, {
    data(_socket, data) {
      largest = Math.max(largest, data.length)
      busyWait(1)
    },
  })
  const { client } = await listenAndConnect(t, ctx)
  const payload = randomBytes(16 * MiB)
  client.end(payload)
  const close = await tracker.wait('close', undefined, 30_000)
  t.is(close.args[0], 0)
  t.is(sha256(tracker.received(close.socket)), sha256(payload))
  t.true(largest <= 65536, `one onData carried ${largest} bytes, more than maxPendingBytes`)
})

test('randomised lifecycle (hammer): writes, sends, shutdowns, closes, pauses, adoptions and resets keep the per-socket order', async (t) => {
  const { loop, ctx: ctxA } = newContext(t, { highWaterMark: 4096 })
  const ctxB = ctxA.createChild()
  let seed = 12345
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed / 0x7fffffff
  }
  const events = new Map<Socket, string[]>()
  const violations: string[] = []
  const record = (socket: Socket, event: string) => {
    let list = events.get(socket)
    if (list === undefined) events.set(socket, (list = []))
    if (list.includes('close') || list.includes('connectError')) violations.push(`${event} after ${list.join(',')}`)
    if (event === 'open' && list.length > 0) violations.push(`open after ${list.join(',')}`)
    list.push(event)
  }
  const act = (socket: Socket) => {
    const r = random()
    if (r < 0.3) socket.write(Buffer.alloc(Math.floor(random() * 100_000), 1))
    else if (r < 0.5) socket.send(Buffer.alloc(Math.floor(random() * 200_000), 2))
    else if (r < 0.55) socket.shutdown()
    else if (r < 0.6) socket.close()
    else if (r < 0.65) {
      socket.pause()
      setTimeout(() => socket.resume(), 5)
    } else if (r < 0.7) (socket.context === ctxA ? ctxB : ctxA).adoptSocket(socket)
    else if (r < 0.72) socket.timeout(1)
    else if (r < 0.74) socket.shutdownRead()
    else if (r < 0.75) socket.close(1, 'x')
  }
  for (const ctx of [ctxA, ctxB]) {
    ctx
      .onOpen((socket: Socket) => {
        record(socket, 'open')
        act(socket)
      })
      .onData((socket: Socket, data: Buffer) => {
        if (data.length === 0) violations.push('empty onData')
        record(socket, 'data')
        act(socket)
      })
      .onWritable((socket: Socket) => {
        record(socket, 'writable')
        act(socket)
      })
      .onEnd((socket: Socket) => {
        record(socket, 'end')
        if (random() < 0.5) socket.close()
        else act(socket)
      })
      .onTimeout((socket: Socket) => {
        record(socket, 'timeout')
        socket.close()
      })
      .onClose((socket: Socket) => record(socket, 'close'))
      .onConnectError((socket: Socket) => record(socket, 'connectError'))
  }
  const listener = ctxA.listen('127.0.0.1', 0)
  const server = await nodeServer(t, '127.0.0.1', (peer) => {
    peer.on('data', (d: Buffer) => {
      if (random() < 0.1) peer.write(d.subarray(0, 1000))
      if (random() < 0.01) peer.resetAndDestroy()
    })
    setTimeout(() => peer.end(), random() * 300)
  })
  const ours: Socket[] = []
  const nodeClients: net.Socket[] = []
  t.teardown(() => {
    for (const c of nodeClients) c.destroy()
  })
  for (let i = 0; i < 300; i++) {
    const r = random()
    if (r < 0.4) ours.push(ctxA.connect('127.0.0.1', listener.port))
    else if (r < 0.8) ours.push(ctxA.connect('127.0.0.1', server.port))
    else {
      const c = net.connect(listener.port, '127.0.0.1')
      c.on('error', () => {})
      c.on('data', () => {
        if (random() < 0.05) c.destroy()
      })
      setTimeout(() => c.end('bye'), random() * 200)
      nodeClients.push(c)
    }
    if (random() < 0.05) ours[ours.length - 1]?.close()
  }
  await sleep(1500)
  ctxA.close()
  ctxB.close()
  t.true(ours.every((s) => s.isClosed), 'context.close() left sockets open')
  await sleep(100)
  t.deepEqual(violations, [])
  for (const [socket, list] of events) {
    if (list.includes('connectError')) t.deepEqual(list, ['connectError'])
    else {
      t.is(list.filter((e) => e === 'close').length, 1, `events: ${list.join(',')}`)
      t.true(socket.isClosed)
    }
  }
  t.true(await isSettled(loop.run()), 'nothing holds the loop any more')
})

// --- SocketContext ----------------------------------------------------------------------------------

test('adoptSocket / link: later events reach the new context with ext intact and no onOpen there', async (t) => {
  const { loop, ctx } = newContext(t)
  const other = new SocketContext(loop)
  t.teardown(() => other.close())
  const child = ctx.createChild()
  const tracker = new Tracker(ctx, {
    open(socket) {
      socket.ext = { id: 'moved' }
    },
    data(socket, data) {
      if (data.toString() === 'adopt') t.is(other.adoptSocket(socket), socket)
    },
  })
  const otherTracker = new Tracker(other, {
    data(socket, data) {
      if (data.toString() === 'link') t.is(child.link(socket), socket)
    },
  })
  const childTracker = new Tracker(child, { end() {} })
  const { client } = await listenAndConnect(t, ctx)
  const socket = (await tracker.wait('open')).socket
  client.write('adopt')
  await tracker.wait('data')
  t.is(socket.context, other)
  await sleep(20)
  client.write('link')
  await otherTracker.wait('data')
  t.is(socket.context, child)
  await sleep(20)
  client.write('in child')
  await childTracker.wait('data')
  client.end()
  await childTracker.wait('end')
  socket.close(3, 'done')
  t.deepEqual(tracker.events(socket), ['open', 'data'])
  t.deepEqual(otherTracker.events(socket), ['data'])
  t.deepEqual(childTracker.events(socket), ['data', 'end', 'close'])
  t.deepEqual(childTracker.first('close')!.args, [3, 'done'])
  t.deepEqual(socket.ext, { id: 'moved' })
  t.is(childTracker.first('data')!.socket.ext, socket.ext)
})

test('createChild(): same loop, own handlers, not TLS; adoption target; handlers chain; ext', (t) => {
  const { loop, ctx } = newContext(t)
  const child = ctx.createChild()
  t.true(child instanceof SocketContext)
  t.not(child, ctx)
  t.is(child.loop, loop)
  t.is(ctx.loop, loop)
  t.false(ctx.isTls)
  t.false(child.isTls)
  t.is(ctx.ext, undefined)
  ctx.ext = { a: 1 }
  t.deepEqual(ctx.ext, { a: 1 })
  t.is(child.ext, undefined)
  const noop = () => {}
  const chained = ctx
    .onOpen(noop)
    .onData(noop)
    .onWritable(noop)
    .onEnd(noop)
    .onTimeout(noop)
    .onLongTimeout(noop)
    .onClose(noop)
    .onConnectError(noop)
  t.is(chained, ctx)
  t.is(child.onOpen(noop), child)
})

test('adoptSocket of a socket from another loop throws; the socket stays where it was', async (t) => {
  const { ctx } = newContext(t)
  const { ctx: foreign } = newContext(t)
  const tracker = new Tracker(ctx)
  await listenAndConnect(t, ctx)
  const socket = (await tracker.wait('open')).socket
  t.throws(() => foreign.adoptSocket(socket))
  t.is(socket.context, ctx)
  t.false(socket.isClosed)
})

test('context.close() closes listen sockets and fires onClose for every socket before it returns; the context stays usable', async (t) => {
  const { ctx } = newContext(t)
  const server = await nodeServer(t)
  let returned = false
  const closedBeforeReturn: string[] = []
  const tracker = new Tracker(ctx, {
    close(socket) {
      if (!returned) closedBeforeReturn.push(socket.ext as string)
    },
    connectError(socket) {
      if (!returned) closedBeforeReturn.push(socket.ext as string)
    },
  })
  const l1 = ctx.listen('127.0.0.1', 0)
  const l2 = ctx.listen('::1', 0)
  const c1 = await nodeConnect(t, l1.port)
  const c2 = await nodeConnect(t, l2.port, '::1')
  ctx.connect('127.0.0.1', server.port, { ext: 'client' })
  await until(() => tracker.count('open') === 3, 'three opens')
  for (const e of tracker.log) if (e.socket.ext === undefined) e.socket.ext = `accepted ${e.socket.localPort}`
  const pendingClose = [once(c1, 'close'), once(c2, 'close')]
  ctx.close()
  returned = true
  t.is(closedBeforeReturn.length, 3)
  t.true(closedBeforeReturn.includes('client'))
  t.true(l1.isClosed && l2.isClosed)
  await Promise.all(pendingClose)
  const refused = net.connect(l1.port, '127.0.0.1')
  t.is(((await once(refused, 'error')) as any).code, 'ECONNREFUSED')
  ctx.close()
  tracker.assertLifecycle(t)

  // Still usable.
  const l3 = ctx.listen('127.0.0.1', 0)
  await nodeConnect(t, l3.port)
  await until(() => tracker.count('open') === 4, 'an accept after close()')
  const again = ctx.connect('127.0.0.1', server.port)
  await tracker.wait('open', again)
})

test('context.close() with a connecting socket: its connect ends in onConnectError before close() returns, nothing after', async (t) => {
  const { ctx } = newContext(t)
  const port = await blackholePort(t)
  const tracker = new Tracker(ctx)
  const socket = ctx.connect('127.0.0.1', port)
  const resolving = ctx.connect('localhost', port)
  await sleep(50)
  ctx.close()
  t.true(socket.isClosed)
  t.true(resolving.isClosed)
  t.deepEqual(tracker.events(socket), ['connectError'])
  t.deepEqual(tracker.events(resolving), ['connectError'])
  await sleep(200)
  t.deepEqual(tracker.events(socket), ['connectError'])
  t.deepEqual(tracker.events(resolving), ['connectError'])
})

test('a context made without a loop uses Loop.default()', (t) => {
  const ctx = new SocketContext()
  t.is(ctx.loop, Loop.default())
  const ctx2 = new SocketContext(null, { highWaterMark: 1 })
  t.is(ctx2.loop, Loop.default())
})

// --- liveness, loop.close, exceptions ----------------------------------------------------------------

test('run() stays pending while a listen socket, a connecting or an open socket exist; resolves once all are closed', async (t) => {
  const loop = newLoop(t)
  const ctx = new SocketContext(loop)
  const server = await nodeServer(t, '127.0.0.1', undefined, {}, { allowHalfOpen: true })
  const tracker = new Tracker(ctx)
  t.true(await isSettled(loop.run()), 'an idle loop')
  const listener = ctx.listen('127.0.0.1', 0)
  const run1 = loop.run()
  t.false(await isSettled(run1))
  const client = await nodeConnect(t, listener.port)
  const accepted = (await tracker.wait('open')).socket
  listener.close()
  await sleep(20)
  t.false(await isSettled(run1), 'the accepted socket holds the loop')
  client.end()
  await tracker.wait('close', accepted)
  t.true(await isSettled(run1))

  const connecting = ctx.connect('127.0.0.1', server.port)
  const run2 = loop.run()
  t.false(await isSettled(run2), 'a connecting socket holds the loop')
  await tracker.wait('open', connecting)
  t.false(await isSettled(run2), 'an open socket holds the loop')
  connecting.shutdown()
  await sleep(50)
  t.false(await isSettled(run2), 'a half-closed socket holds the loop')
  ;(await server.next()).end()
  await tracker.wait('close', connecting)
  t.true(await isSettled(run2))
})

test('liveness (child process): a listen socket keeps the process alive; it exits by itself once the listener and its sockets closed', async (t) => {
  const result = await runNode(
    `const net = require('node:net')
     const { Loop, SocketContext } = usockets
     const t0 = Date.now()
     const events = []
     const ctx = new SocketContext()
     const listener = ctx.listen('127.0.0.1', 0)
     Loop.default().run().then(() => { console.log(JSON.stringify({ runAt: Date.now() - t0, events })) })
     ctx.onOpen((s) => { events.push('open'); listener.close() })
     ctx.onData((s, d) => { events.push('data ' + d); s.close() })
     ctx.onClose(() => events.push('close'))
     // An unref'd timer does not hold the process: the listener does.
     setTimeout(() => {
       const c = net.connect(listener.port, '127.0.0.1', () => c.write('x'))
       c.on('error', () => {})
     }, 600).unref()`,
    10_000,
  )
  t.false(result.timedOut, 'the process did not exit by itself')
  t.is(result.code, 0, result.stderr)
  t.is(result.stderr, '')
  const report = lastJson(result.stdout)
  t.deepEqual(report.events, ['open', 'data x', 'close'])
  t.true(report.runAt >= 600, `run() resolved after ${report.runAt} ms`)
  t.true(result.elapsedMs >= 600)
  t.true(result.elapsedMs < 4000, `lived ${result.elapsedMs} ms`)
})

test('loop.close() with open sockets: each onClose fires before close() returns; the peers see the end', async (t) => {
  const loop = newLoop(t)
  const ctx = new SocketContext(loop)
  const server = await nodeServer(t)
  let returned = false
  const tracker = new Tracker(ctx, {
    close() {
      t.false(returned, 'onClose after loop.close() returned')
    },
  })
  const { listener, client } = await listenAndConnect(t, ctx)
  const outgoing = ctx.connect('127.0.0.1', server.port)
  const peer = await server.next()
  await until(() => tracker.count('open') === 2, 'two opens')
  const peersClosed = [once(client, 'close'), once(peer, 'close')]
  loop.close()
  returned = true
  t.is(tracker.count('close'), 2)
  t.true(listener.isClosed)
  t.true(outgoing.isClosed)
  await Promise.all(peersClosed)
  await sleep(50)
  t.is(tracker.count('close'), 2)
  tracker.assertLifecycle(t)
})

test('a throwing handler is reported as uncaughtException; that socket and the others keep working (child process)', async (t) => {
  const result = await runNode(
    `const net = require('node:net')
     const { Loop, SocketContext } = usockets
     const uncaught = []
     process.on('uncaughtException', (err) => uncaught.push(err.message))
     const loop = new Loop()
     const ctx = new SocketContext(loop)
     let n = 0
     ctx.onOpen((s) => { s.ext = ++n; throw new Error('open ' + s.ext) })
     ctx.onData((s, d) => {
       const text = d.toString()
       s.write(text.toUpperCase())
       if (text.startsWith('boom')) throw new Error('data ' + text)
     })
     ctx.onClose((s) => { throw new Error('close') })
     const listener = ctx.listen('127.0.0.1', 0)
     function client() {
       const c = net.connect(listener.port, '127.0.0.1')
       c.setEncoding('utf8')
       c.got = ''
       c.on('data', (d) => (c.got += d))
       return c
     }
     const a = client(), b = client()
     const wait = (c, text) => new Promise((resolve) => { const check = () => (c.got.includes(text) ? resolve() : setTimeout(check, 5)); check() })
     ;(async () => {
       a.write('boom-a'); await wait(a, 'BOOM-A')
       b.write('b1'); await wait(b, 'B1')
       a.write('after-a'); await wait(a, 'AFTER-A')
       b.write('boom-b'); await wait(b, 'BOOM-B')
       b.write('b2'); await wait(b, 'B2')
       a.end(); b.end()
       await new Promise((resolve) => setTimeout(resolve, 200))
       loop.close()
       console.log(JSON.stringify({ a: a.got, b: b.got, uncaught: uncaught.sort() }))
     })()`,
    10_000,
  )
  t.false(result.timedOut, `hung: ${result.stdout} ${result.stderr}`)
  t.is(result.code, 0, result.stderr)
  const report = lastJson(result.stdout)
  t.is(report.a, 'BOOM-AAFTER-A')
  t.is(report.b, 'B1BOOM-BB2')
  t.deepEqual(report.uncaught, ['close', 'close', 'data boom-a', 'data boom-b', 'open 1', 'open 2'])
})

test('many concurrent connections to our listener: each echoes its own data', async (t) => {
  const { ctx } = newContext(t)
  const tracker = new Tracker(ctx, {
    data(socket, data) {
      socket.send(data)
    },
    end(socket) {
      socket.shutdown()
    },
  })
  const listener = ctx.listen('127.0.0.1', 0)
  const results = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const client = await nodeConnect(t, listener.port)
      const payload = randomBytes(10_000 + i * 997)
      const back = readAll(client)
      client.end(payload)
      return sha256(await back) === sha256(payload)
    }),
  )
  t.true(results.every(Boolean))
  await until(() => tracker.count('close') === 50, 'fifty closes')
  tracker.assertLifecycle(t)
})

test("onData's Buffer is a Buffer in every way node's own are: instanceof, isBuffer, constructor, subarray, inspect, methods", async (t) => {
  const { ctx } = newContext(t)
  const tracker = new Tracker(ctx)
  const { client } = await listenAndConnect(t, ctx)
  client.write('hello, buffer')
  const { args } = await tracker.wait('data')
  const data = args[0]
  t.true(data instanceof Buffer)
  t.true(Buffer.isBuffer(data))
  t.is(data.constructor, Buffer)
  const part = data.subarray(7)
  t.true(Buffer.isBuffer(part))
  t.is(part.toString(), 'buffer')
  t.is(data.toString('hex'), Buffer.from('hello, buffer').toString('hex'))
  t.true(data.equals(Buffer.from('hello, buffer')))
  t.is(inspect(data), inspect(Buffer.from('hello, buffer')))
  t.is(data.readUInt8(0), 'h'.charCodeAt(0))
  client.destroy()
})
