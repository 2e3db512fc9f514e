// borrowData (SocketContext and UdpSocket option): onData's Buffer is lent until the handler
// returns, then empty, and its batch's memory goes back to the loop; what outlives the batch
// (data held back by pause()) is copied; handlers that keep their data beside borrowing ones
// keep it intact.
import dgram from 'node:dgram'
import { once as onceEvent } from 'node:events'
import tls from 'node:tls'

import test from 'ava'

import { type Socket, SocketContext, UdpSocket } from '..'

import { keyCert } from './helpers/interop'
import { nodeConnect, randomBytes, sha256, until } from './helpers/net'
import { fixture } from './helpers/tls'
import { busyWait, newLoop, sleep, typeError } from './helpers/util'

const MiB = 1024 * 1024

/** What a handler saw: a copy of the bytes made inside it, and the Buffer itself (kept). */
interface Seen {
  copies: Buffer[]
  kept: Buffer[]
}

function seen(): Seen {
  return { copies: [], kept: [] }
}

function record(into: Seen, data: Buffer): void {
  into.copies.push(Buffer.from(data))
  into.kept.push(data)
}

test('borrowData: onData has the bytes while it runs; a Buffer kept past it is empty, small and bulk batches alike', async (t) => {
  const loop = newLoop(t)
  const ctx = new SocketContext(loop, { borrowData: true })
  const server = seen()
  ctx.onData((_socket, data) => record(server, data))
  const listener = ctx.listen('127.0.0.1', 0)
  const client = await nodeConnect(t, listener.port)
  const big = randomBytes(4 * MiB)
  client.write('hello')
  await until(() => server.copies.length === 1, 'the small write')
  client.write(big)
  const expected = Buffer.concat([Buffer.from('hello'), big])
  await until(() => server.copies.reduce((n, copy) => n + copy.length, 0) >= expected.length, 'the 4 MiB')
  t.is(sha256(Buffer.concat(server.copies)), sha256(expected))
  t.true(server.copies.some((copy) => copy.length >= 64 * 1024), 'no bulk delivery')
  t.deepEqual(
    server.kept.map((data) => data.length),
    server.kept.map(() => 0),
    'a kept Buffer still had bytes after its handler returned',
  )
  client.destroy()
})

test('default (no borrowData): a Buffer kept past onData keeps its bytes', async (t) => {
  const loop = newLoop(t)
  const ctx = new SocketContext(loop)
  const server = seen()
  ctx.onData((_socket, data) => record(server, data))
  const listener = ctx.listen('127.0.0.1', 0)
  const client = await nodeConnect(t, listener.port)
  const big = randomBytes(2 * MiB)
  client.write(big)
  await until(() => server.copies.reduce((n, copy) => n + copy.length, 0) >= big.length, 'the 2 MiB')
  t.is(sha256(server.kept), sha256(big))
  t.is(sha256(server.kept), sha256(server.copies))
  client.destroy()
})

test('a keeping context beside a borrowing one on the same loop: data the two got in one batch stays intact for the keeping one', async (t) => {
  const loop = newLoop(t)
  const borrowing = new SocketContext(loop, { borrowData: true })
  const keeping = new SocketContext(loop)
  const lent = seen()
  const kept = seen()
  borrowing.onData((_socket, data) => record(lent, data))
  keeping.onData((_socket, data) => record(kept, data))
  const toBorrowing = await nodeConnect(t, borrowing.listen('127.0.0.1', 0).port)
  const toKeeping = await nodeConnect(t, keeping.listen('127.0.0.1', 0).port)
  await sleep(50)
  const a = randomBytes(256 * 1024)
  const b = randomBytes(256 * 1024)
  // Both writes are in the kernel before this thread blocks; meanwhile the loop thread reads
  // both into the batch JavaScript takes next.
  toBorrowing.write(a)
  toKeeping.write(b)
  busyWait(200)
  await until(() => kept.copies.reduce((n, copy) => n + copy.length, 0) >= b.length, 'the keeping context’s bytes')
  await until(() => lent.copies.reduce((n, copy) => n + copy.length, 0) >= a.length, 'the borrowing context’s bytes')
  t.is(sha256(kept.kept), sha256(b), 'the keeping context’s Buffers changed after its handler returned')
  t.is(sha256(lent.copies), sha256(a))
  toBorrowing.destroy()
  toKeeping.destroy()
})

test('borrowData with pause() inside onData: what the loop had read meanwhile is held as a copy and arrives intact after resume()', async (t) => {
  const loop = newLoop(t)
  const ctx = new SocketContext(loop, { borrowData: true })
  const received: Buffer[] = []
  let socket: Socket | undefined
  ctx.onData((self, data) => {
    received.push(Buffer.from(data))
    if (received.length === 1) {
      socket = self
      self.pause()
    }
  })
  ctx.onEnd((self) => self.close())
  const client = await nodeConnect(t, ctx.listen('127.0.0.1', 0).port)
  const rest = randomBytes(MiB)
  // Blocking the JS thread lets the loop thread read each write before 'A' is dispatched: the
  // rest is behind 'A' when onData('A') pauses the socket, in batches that go back to the loop.
  client.write('A')
  busyWait(100)
  client.write(rest)
  busyWait(100)
  client.end('C')
  busyWait(100)
  await until(() => socket !== undefined, "onData('A')")
  await sleep(200)
  t.is(received.length, 1, 'onData while paused')
  socket!.resume()
  await until(() => socket!.isClosed, 'the close after the end')
  t.is(sha256(received), sha256([Buffer.from('A'), rest, Buffer.from('C')]))
})

test('borrowData: an unbounded writer through a pausing echo (send, pause on false, resume on onWritable) gets every byte back', async (t) => {
  const loop = newLoop(t)
  const ctx = new SocketContext(loop, { borrowData: true })
  ctx.onData((socket, data) => {
    if (!socket.send(data)) socket.pause()
  })
  ctx.onWritable((socket) => socket.resume())
  ctx.onEnd((socket) => socket.shutdown())
  const client = await nodeConnect(t, ctx.listen('127.0.0.1', 0).port)
  const payload = randomBytes(32 * MiB)
  const echoed: Buffer[] = []
  client.on('data', (chunk: Buffer) => echoed.push(chunk))
  const ended = onceEvent(client, 'end')
  for (let at = 0; at < payload.length; at += 64 * 1024) client.write(payload.subarray(at, at + 64 * 1024))
  client.end()
  await ended
  t.is(sha256(echoed), sha256(payload))
})

test('borrowData over TLS: a node:tls client’s 4 MiB are echoed intact; kept Buffers are empty', async (t) => {
  const loop = newLoop(t)
  const ctx = new SocketContext(loop, { tls: keyCert('server'), borrowData: true })
  const server = seen()
  // No pause(): data it held back would come as a copy, which stays.
  ctx.onData((socket, data) => {
    record(server, data)
    socket.send(data)
  })
  const listener = ctx.listen('127.0.0.1', 0)
  const client = tls.connect({ port: listener.port, host: '127.0.0.1', servername: 'localhost', ca: fixture('ca.pem') })
  t.teardown(() => client.destroy())
  await onceEvent(client, 'secureConnect')
  const payload = randomBytes(4 * MiB)
  const echoed: Buffer[] = []
  client.on('data', (chunk: Buffer) => echoed.push(chunk))
  client.write(payload)
  await until(() => echoed.reduce((n, chunk) => n + chunk.length, 0) >= payload.length, 'the echo', 10_000)
  t.is(sha256(echoed), sha256(payload))
  t.is(sha256(server.copies), sha256(payload))
  t.true(
    server.kept.every((data) => data.length === 0),
    'a kept Buffer still had bytes after its handler returned',
  )
})

test('UdpSocket borrowData: datagrams are right inside onData and empty once it returned; without it they stay', async (t) => {
  const loop = newLoop(t)
  const lent = seen()
  const kept = seen()
  const borrowing = new UdpSocket(loop, { host: '127.0.0.1', borrowData: true, onData: (_socket, data) => record(lent, data) })
  const keeping = new UdpSocket(loop, { host: '127.0.0.1', onData: (_socket, data) => record(kept, data) })
  t.teardown(() => {
    borrowing.close()
    keeping.close()
  })
  const peer = dgram.createSocket('udp4')
  t.teardown(() => peer.close())
  const datagrams = Array.from({ length: 20 }, (_, i) => Buffer.from(`datagram ${i}`))
  for (const datagram of datagrams) peer.send(datagram, borrowing.port, '127.0.0.1')
  await until(() => lent.copies.length === datagrams.length, 'the borrowing socket’s datagrams')
  for (const datagram of datagrams) peer.send(datagram, keeping.port, '127.0.0.1')
  await until(() => kept.copies.length === datagrams.length, 'the keeping socket’s datagrams')
  t.deepEqual(lent.copies.map(String), datagrams.map(String))
  t.true(
    lent.kept.every((data) => data.length === 0),
    'a kept datagram still had bytes after its handler returned',
  )
  t.deepEqual(kept.kept.map(String), datagrams.map(String))
})

test('borrowData must be a boolean: TypeError naming it (SocketContext, createChild, UdpSocket)', (t) => {
  const loop = newLoop(t)
  typeError(t, () => new SocketContext(loop, { borrowData: 1 as unknown as boolean }), 'options.borrowData')
  typeError(t, () => new SocketContext(loop).createChild({ borrowData: 'yes' as unknown as boolean }), 'options.borrowData')
  typeError(t, () => new UdpSocket(loop, { borrowData: null as unknown as boolean, onData() {} }), 'options.borrowData')
})

test('createChild inherits borrowData unless told otherwise', async (t) => {
  const loop = newLoop(t)
  const parent = new SocketContext(loop, { borrowData: true })
  for (const [child, emptied] of [
    [parent.createChild(), true],
    [parent.createChild({ borrowData: false }), false],
  ] as const) {
    const server = seen()
    child.onData((_socket, data) => record(server, data))
    const client = await nodeConnect(t, child.listen('127.0.0.1', 0).port)
    client.write('bytes')
    await until(() => server.copies.length === 1, 'the write')
    await sleep(10)
    t.is(server.kept[0].length === 0, emptied)
    client.destroy()
  }
})
