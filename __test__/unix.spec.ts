// Unix domain sockets: listenUnix / connectUnix against node:net peers on paths in os.tmpdir().
import fs from 'node:fs'
import net from 'node:net'

import test from 'ava'

import { ListenSocket } from '..'

import { Tracker, collect, newContext, nodeConnect, once, randomBytes, sha256, tmpSocketPath, until } from './helpers/net'

test('listenUnix: a node:net client echoes through it; ports are -1; the server side sees its path locally and an unnamed peer', async (t) => {
  const { ctx } = newContext(t)
  const socketPath = tmpSocketPath(t)
  const views: Array<Record<string, unknown>> = []
  const tracker = new Tracker(ctx, {
    open(socket, isClient, remoteAddress) {
      views.push({ isClient, remoteAddress, remotePort: socket.remotePort, localPort: socket.localPort, localAddress: socket.localAddress, remote: socket.remoteAddress })
    },
    data(socket, data) {
      socket.send(data)
    },
    end(socket) {
      socket.shutdown()
    },
    close(socket) {
      views.push({ closedLocal: socket.localAddress, closedRemote: socket.remoteAddress, closedRemotePort: socket.remotePort })
    },
  })
  const listener = ctx.listenUnix(socketPath)
  t.true(listener instanceof ListenSocket)
  t.is(listener.port, -1)
  t.is(listener.host, socketPath)
  t.is(listener.context, ctx)
  t.false(listener.isClosed)
  t.true(fs.statSync(socketPath).isSocket())

  const client = await nodeConnect(t, socketPath)
  const payload = randomBytes(2 * 1024 * 1024)
  const received = collect(client)
  client.write(payload)
  // End only once everything came back (an end with echo data in flight is tcp.spec's business).
  await until(() => received.length() >= payload.length, 'the echo', 20_000)
  t.is(sha256(received.bytes()), sha256(payload))
  const closed = once(client, 'close')
  client.end()
  await closed
  await tracker.wait('close')
  t.deepEqual(views, [
    { isClient: false, remoteAddress: '', remotePort: -1, localPort: -1, localAddress: socketPath, remote: '' },
    { closedLocal: socketPath, closedRemote: '', closedRemotePort: -1 },
  ])
  tracker.assertLifecycle(t)
  listener.close()
  t.true(listener.isClosed)
})

test('connectUnix: to a node:net server; onOpen(socket, true, path), ports -1, the local side is unnamed', async (t) => {
  const { ctx } = newContext(t)
  const socketPath = tmpSocketPath(t)
  const server = net.createServer((peer) => peer.pipe(peer))
  await new Promise<void>((resolve) => server.listen(socketPath, () => resolve()))
  t.teardown(() => {
    server.close()
  })
  const payload = randomBytes(1024 * 1024)
  const tracker = new Tracker(ctx, {
    open(socket) {
      socket.send(payload)
      socket.shutdown()
    },
  })
  const socket = ctx.connectUnix(socketPath, { ext: 'unix' })
  t.is(socket.ext, 'unix')
  t.false(socket.isEstablished)
  t.is(socket.write('early'), 0)
  const open = await tracker.wait('open')
  t.deepEqual(open.args, [true, socketPath])
  t.is(socket.remoteAddress, socketPath)
  t.is(socket.localAddress, '')
  t.is(socket.remotePort, -1)
  t.is(socket.localPort, -1)
  const close = await tracker.wait('close', socket, 10_000)
  t.is(close.args[0], 0)
  t.is(sha256(tracker.received(socket)), sha256(payload))
  t.is(socket.ext, 'unix')
  tracker.assertLifecycle(t)
})

test('connectUnix to our own listenUnix: both ends open, data flows both ways, both close', async (t) => {
  const { ctx } = newContext(t)
  const socketPath = tmpSocketPath(t)
  const tracker = new Tracker(ctx, {
    open(socket, isClient) {
      socket.write(isClient ? 'from client' : 'from server')
    },
    data(socket, data) {
      if (!socket.ext) socket.ext = ''
      socket.ext += data.toString()
      if (socket.ext === 'from server') socket.shutdown()
    },
    end() {},
  })
  const listener = ctx.listenUnix(socketPath)
  const client = ctx.connectUnix(socketPath)
  await until(() => tracker.count('data') >= 2, 'data both ways')
  const server = tracker.sockets().find((s) => s !== client)
  if (server === undefined) return t.fail('no accepted socket')
  t.is(client.ext, 'from server')
  t.is(server.ext, 'from client')
  server.shutdown()
  await until(() => tracker.count('close') === 2, 'both ends to close')
  t.deepEqual(tracker.log.filter((e) => e.event === 'close').map((e) => e.args[0]), [0, 0])
  listener.close()
  tracker.assertLifecycle(t)
})

test('connectUnix to a missing path: onConnectError with ENOENT (or ECONNREFUSED); to a path nobody listens on: ECONNREFUSED', async (t) => {
  const { ctx } = newContext(t)
  const missing = tmpSocketPath(t, 'missing')
  const stale = tmpSocketPath(t, 'stale')
  const tracker = new Tracker(ctx)
  const a = ctx.connectUnix(missing)
  const errA = await tracker.wait('connectError', a)
  t.true(['ENOENT', 'ECONNREFUSED'].includes(errA.args[1].code), errA.args[1].code)
  t.true(errA.args[1] instanceof Error)
  t.true(errA.args[0] > 0)

  // A socket file without a listener: a node:net server closed without removing it is hard to
  // make, so bind one with our listener and close it (our close leaves the file, like uSockets).
  const listener = ctx.listenUnix(stale)
  listener.close()
  if (fs.existsSync(stale)) {
    const b = ctx.connectUnix(stale)
    const errB = await tracker.wait('connectError', b)
    t.is(errB.args[1].code, 'ECONNREFUSED')
    t.is(errB.args[0], 111)
  }
  t.is(tracker.count('open'), 0)
  t.is(tracker.count('close'), 0)
})

test('listenUnix: close() stops accepting while an accepted socket stays open', async (t) => {
  const { ctx } = newContext(t)
  const socketPath = tmpSocketPath(t)
  const tracker = new Tracker(ctx, {
    data(socket, data) {
      socket.write(data)
    },
  })
  const listener = ctx.listenUnix(socketPath)
  const client = await nodeConnect(t, socketPath)
  await tracker.wait('open')
  listener.close()
  t.true(listener.isClosed)
  const refused = net.connect(socketPath)
  const err: any = await once(refused, 'error')
  t.true(['ECONNREFUSED', 'ENOENT'].includes(err.code), err.code)
  client.write('still here')
  t.is((await once<Buffer>(client, 'data')).toString(), 'still here')
  client.end()
  await tracker.wait('close')
})

test('listenUnix on the same path again after its listener closed (same context, and after context.close())', async (t) => {
  const { ctx } = newContext(t)
  const socketPath = tmpSocketPath(t)
  ctx.listenUnix(socketPath).close()
  t.notThrows(() => ctx.listenUnix(socketPath), 'listenUnix after listener.close()')
  ctx.close()
  let again: ListenSocket | null = null
  t.notThrows(() => {
    again = ctx.listenUnix(socketPath)
  }, 'listenUnix after context.close()')
  if (again !== null) {
    const tracker = new Tracker(ctx)
    await nodeConnect(t, socketPath)
    await tracker.wait('open')
  }
})

test('listenUnix errors: a path in a missing directory and a path longer than sockaddr_un allows throw an Error with a code', (t) => {
  const { ctx } = newContext(t)
  const err1: any = t.throws(() => ctx.listenUnix('/nonexistent-dir-usockets/x.sock'))
  t.is(typeof err1?.code, 'string')
  const err2: any = t.throws(() => ctx.listenUnix(`/tmp/${'x'.repeat(200)}.sock`))
  t.is(typeof err2?.code, 'string')
  t.is(ctx.listen('127.0.0.1', 0).isClosed, false)
})
