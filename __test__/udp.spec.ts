// UdpSocket over real sockets, with node:dgram peers.
import { spawn } from 'node:child_process'
import dgram from 'node:dgram'
import { once as onceEvent } from 'node:events'
import { Worker } from 'node:worker_threads'

import test from 'ava'

import { type Loop, UdpSocket } from '..'

import { ROOT, runNode, until } from './helpers/net'
import { busyWait, newLoop, sleep } from './helpers/util'

type Received = { data: Buffer; port: number; address: string }

/** A UdpSocket on `loop` that records what it receives (copies: the batch views move on). */
function receiver(loop: Loop, options: { host?: string; onData?: (socket: UdpSocket, data: Buffer, port: number, address: string) => void } = {}) {
  const received: Received[] = []
  const socket = new UdpSocket(loop, {
    host: options.host ?? '127.0.0.1',
    onData(self, data, port, address) {
      received.push({ data: Buffer.from(data), port, address })
      options.onData?.(self, data, port, address)
    },
  })
  return { socket, received }
}

async function nodeDgram(type: 'udp4' | 'udp6', address: string): Promise<dgram.Socket> {
  const socket = dgram.createSocket(type)
  socket.bind(0, address)
  await onceEvent(socket, 'listening')
  return socket
}

for (const [family, host, type] of [
  ['IPv4', '127.0.0.1', 'udp4'],
  ['IPv6', '::1', 'udp6'],
] as const) {
  test(`${family}: a node:dgram client's datagrams are echoed; ours reach a node:dgram server, with the right sender`, async (t) => {
    const loop = newLoop(t)
    const { socket, received } = receiver(loop, { host, onData: (self, data, port, address) => t.true(self.send(data, port, address)) })
    t.is(socket.address, host)
    t.true(socket.port > 0)

    const peer = await nodeDgram(type, host)
    t.teardown(() => peer.close())
    const echoed = onceEvent(peer, 'message')
    peer.send('ping', socket.port, host)
    const [message, rinfo] = (await echoed) as [Buffer, dgram.RemoteInfo]
    t.is(message.toString(), 'ping')
    t.deepEqual([rinfo.address, rinfo.port], [host, socket.port])
    t.deepEqual(received.map(({ data, port, address }) => [data.toString(), port, address]), [['ping', peer.address().port, host]])

    // And the other way: ours sends first, to a node:dgram server.
    const reply = onceEvent(peer, 'message')
    t.true(socket.send(Buffer.from('hello'), peer.address().port, host))
    const [hello] = (await reply) as [Buffer]
    t.is(hello.toString(), 'hello')
  })
}

test('10,000 datagrams of mixed sizes from node:dgram all arrive intact when the consumer keeps up', async (t) => {
  const loop = newLoop(t)
  const sizes = Array.from({ length: 10_000 }, (_, i) => [0, 1, 64, 512, 1200, 1472, 9000, 60_000][i % 8])
  const expected = sizes.map((size, i) => {
    const data = Buffer.alloc(size + 4, i % 251)
    data.writeUInt32LE(i)
    return data
  })
  const { socket, received } = receiver(loop)
  const peer = await nodeDgram('udp4', '127.0.0.1')
  t.teardown(() => peer.close())
  // A window of 8 datagrams in flight (at most 0.5 MB): the receive buffer never overflows.
  for (let sent = 0; sent < expected.length; ) {
    const end = Math.min(sent + 8, expected.length)
    for (; sent < end; sent++) peer.send(expected[sent], socket.port, '127.0.0.1')
    const want = sent
    await until(() => received.length >= want, `${want} datagrams`, 10_000)
  }
  t.is(received.length, expected.length)
  t.is(socket.receivedDropped, 0)
  const wrong = received.findIndex(({ data }, i) => !data.equals(expected[i]))
  t.is(wrong, -1, `datagram ${wrong} differs (order or bytes)`)
})

test.serial('a busy JavaScript thread: the loop stops at maxPendingBytes, the kernel drops the rest and receivedDropped counts it', async (t) => {
  const loop = newLoop(t, { maxPendingBytes: 64 * 1024 })
  const { socket, received } = receiver(loop)
  const count = 20_000
  // A sender in a process of its own, so it keeps sending while this thread is busy.
  const sender = spawn(process.execPath, [
    '-e',
    `const s = require('node:dgram').createSocket('udp4'); const d = Buffer.alloc(1000, 7); let n = 0;
     (function go() { for (let i = 0; i < 500 && n < ${count}; i++, n++) s.send(d, ${socket.port}, '127.0.0.1');
       if (n < ${count}) setImmediate(go); else setTimeout(() => s.close(), 200) })()`,
  ])
  busyWait(1500)
  await onceEvent(sender, 'exit')
  await sleep(200)
  const dropped = socket.receivedDropped
  t.true(dropped > 0, `${received.length} received, none dropped`)
  t.true(received.length + dropped <= count, `${received.length} received + ${dropped} dropped > ${count} sent`)
  // Bounded: the loop held at most its 64 KiB of credit (and one receive) while this thread was
  // busy, the kernel its receive buffer; a loop that kept reading would have queued ~20 MB.
  t.true(received.length < 1000, `${received.length} datagrams delivered: the loop did not stop reading`)
  t.true(received.every(({ data }) => data.length === 1000 && data.every((byte) => byte === 7)))
})

test('connected: send(data) goes to the peer, only its datagrams arrive; disconnect() ends that', async (t) => {
  const loop = newLoop(t)
  const { socket, received } = receiver(loop)
  const peer = await nodeDgram('udp4', '127.0.0.1')
  const stranger = await nodeDgram('udp4', '127.0.0.1')
  t.teardown(() => (peer.close(), stranger.close()))
  socket.connect('127.0.0.1', peer.address().port)
  t.deepEqual([socket.remoteAddress, socket.remotePort], ['127.0.0.1', peer.address().port])
  const got = onceEvent(peer, 'message')
  t.true(socket.send('to the peer'))
  t.is(((await got) as [Buffer])[0].toString(), 'to the peer')
  t.throws(() => socket.send('x', peer.address().port, '127.0.0.1'), { code: 'ERR_SOCKET_DGRAM_IS_CONNECTED' })
  stranger.send('from a stranger', socket.port, '127.0.0.1')
  peer.send('from the peer', socket.port, '127.0.0.1')
  await until(() => received.length > 0, 'the peer\'s datagram')
  await sleep(100)
  t.deepEqual(received.map(({ data }) => data.toString()), ['from the peer'], 'the kernel filters by the connected peer')

  socket.disconnect()
  t.is(socket.remoteAddress, undefined)
  t.throws(() => socket.disconnect(), { code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' })
  t.throws(() => socket.send('x'), { instanceOf: TypeError, message: /port/ })
  stranger.send('welcome now', socket.port, '127.0.0.1')
  await until(() => received.length === 2, 'the stranger\'s datagram')
})

test('an ICMP port unreachable about the connected peer reaches onError with ECONNREFUSED; the socket stays open', async (t) => {
  const loop = newLoop(t)
  const errors: string[] = []
  const socket = new UdpSocket(loop, { host: '127.0.0.1', onData() {}, onError: (_socket, err) => errors.push(err.code!) })
  const gone = await nodeDgram('udp4', '127.0.0.1')
  const port = gone.address().port
  await new Promise<void>((resolve) => gone.close(resolve))
  socket.connect('127.0.0.1', port)
  t.true(socket.send('anyone there?'))
  await until(() => errors.length > 0, 'onError', 5000)
  t.deepEqual(errors, ['ECONNREFUSED'])
  t.false(socket.isClosed)
  // Still usable: a new peer at that port gets the next datagram.
  socket.disconnect()
  const peer = await nodeDgram('udp4', '127.0.0.1')
  t.teardown(() => peer.close())
  const got = onceEvent(peer, 'message')
  t.true(socket.send('hello again', peer.address().port, '127.0.0.1'))
  t.is(((await got) as [Buffer])[0].toString(), 'hello again')
})

test('sendMany: many datagrams in one sendmmsg, in order, unconnected and connected', async (t) => {
  const loop = newLoop(t)
  const { socket: target, received } = receiver(loop)
  const { socket } = receiver(loop)
  const packets = Array.from({ length: 100 }, (_, i) => [Buffer.from(`datagram ${i}`), target.port, '127.0.0.1']).flat()
  t.is(socket.sendMany(packets), 100)
  await until(() => received.length === 100, '100 datagrams')
  t.deepEqual(received.map(({ data }) => data.toString()), Array.from({ length: 100 }, (_, i) => `datagram ${i}`))
  t.true(received.every(({ port }) => port === socket.port))

  socket.connect('127.0.0.1', target.port)
  t.is(socket.sendMany(['x', new Uint8Array([121]), 'z']), 3)
  await until(() => received.length === 103, '3 more')
  t.deepEqual(received.slice(100).map(({ data }) => data.toString()), ['x', 'y', 'z'])
  t.throws(() => socket.sendMany('x' as never), { instanceOf: TypeError, message: /packets/ })
  socket.disconnect()
  t.throws(() => socket.sendMany(['x', target.port]), { code: 'ERR_INVALID_ARG_VALUE', message: /triples/ })
  t.throws(() => socket.sendMany(['x', target.port, 'localhost']), { code: 'ERR_INVALID_ARG_VALUE', message: /packets\[2\]/ })
})

test('multicast on loopback: a member of 239.1.2.3 on 127.0.0.1 gets what is sent to the group; TTL, loopback and buffer options apply', async (t) => {
  const loop = newLoop(t)
  const { socket: member, received } = receiver(loop, { host: '0.0.0.0' })
  member.addMembership('239.1.2.3', '127.0.0.1')
  const { socket: sender } = receiver(loop)
  sender.setMulticastInterface('127.0.0.1')
  t.is(sender.setMulticastTTL(1), 1)
  t.is(sender.setMulticastLoopback(true), true)
  t.is(sender.setTTL(64), 64)
  t.true(sender.send('to the group', member.port, '239.1.2.3'))
  await until(() => received.length === 1, 'the group datagram')
  t.deepEqual([received[0].data.toString(), received[0].address], ['to the group', '127.0.0.1'])
  member.dropMembership('239.1.2.3', '127.0.0.1')
  t.throws(() => member.addMembership('10.0.0.1'), { code: 'ERR_INVALID_ARG_VALUE', message: /multicast/ })
  t.throws(() => sender.setMulticastTTL(256), { instanceOf: RangeError })
  t.throws(() => sender.setBroadcast('yes' as never), { instanceOf: TypeError })
  sender.setBroadcast(true)

  t.true(member.setRecvBufferSize(100_000) >= 100_000, 'the kernel doubles the request')
  t.is(member.getRecvBufferSize(), member.setRecvBufferSize(100_000))
  t.true(sender.setSendBufferSize(50_000) >= 50_000)
  member.close()
  t.is(member.getRecvBufferSize(), 0, 'a closed socket: a no-op')
  t.notThrows(() => member.setBroadcast(true))
})

test('bad arguments throw naming the argument; nothing is sent', (t) => {
  const loop = newLoop(t)
  const onData = () => {}
  t.throws(() => new UdpSocket(loop, {} as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE', message: /options\.onData/ })
  t.throws(() => new UdpSocket(loop, undefined as never), { instanceOf: TypeError, message: /options/ })
  t.throws(() => new UdpSocket(loop, { port: 70_000, onData }), { instanceOf: RangeError, message: /options\.port/ })
  t.throws(() => new UdpSocket(loop, { host: 5 as never, onData }), { instanceOf: TypeError, message: /options\.host/ })
  t.throws(() => new UdpSocket(loop, { host: 'a\0b', onData }), { code: 'ERR_INVALID_ARG_VALUE' })
  const socket = new UdpSocket(loop, { host: '127.0.0.1', onData })
  // First: the one-entry cache of the last address checked starts empty, and '' is not in it.
  t.throws(() => socket.send('x', 9, ''), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE', message: /IP address/ })
  t.throws(() => socket.send('x', 9, 'localhost'), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE', message: /IP address/ })
  t.throws(() => socket.send('x', 0, '127.0.0.1'), { instanceOf: RangeError, message: /port/ })
  t.throws(() => socket.send(Buffer.alloc(65_508), 9, '127.0.0.1'), { instanceOf: RangeError, message: /65507/ })
  t.throws(() => socket.send(5 as never, 9, '127.0.0.1'), { instanceOf: TypeError, message: /data/ })
  t.throws(() => new UdpSocket(loop, { host: '127.0.0.1', port: socket.port, exclusive: true, onData }), { code: 'EADDRINUSE' })
})

test("an address send() refuses inside onData throws there and spoils none of the batch's coalesced datagrams", async (t) => {
  const loop = newLoop(t)
  const refused: string[] = []
  const { socket: server } = receiver(loop, {
    onData(self, data, port, address) {
      try {
        self.send(data, port, '')
      } catch (err) {
        refused.push((err as NodeJS.ErrnoException).code ?? 'no code')
      }
      self.send(data, port, address)
    },
  })
  t.teardown(() => server.close())
  const peer = await nodeDgram('udp4', '127.0.0.1')
  t.teardown(() => peer.close())
  const echoes: string[] = []
  peer.on('message', (message) => echoes.push(message.toString()))
  for (const text of ['one', 'two', 'three']) peer.send(text, server.port, '127.0.0.1')
  await until(() => echoes.length === 3, 'the echoes')
  t.deepEqual(echoes.sort(), ['one', 'three', 'two'])
  t.deepEqual(refused, ['ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'])
  t.is(server.sendDropped, 0)
})

test('close(): the port is free at once, later calls are harmless; loop.close() closes open ones', async (t) => {
  const loop = newLoop(t)
  const onData = () => {}
  const socket = new UdpSocket(loop, { host: '127.0.0.1', exclusive: true, onData })
  const { port } = socket
  socket.close()
  socket.close()
  t.true(socket.isClosed)
  t.false(socket.send('x', 9, '127.0.0.1'))
  t.is(socket.receivedDropped, 0)
  const again = new UdpSocket(loop, { host: '127.0.0.1', port, exclusive: true, onData })
  t.is(again.port, port)
  loop.close()
  t.true(again.isClosed)
  t.false(again.send('x', 9, '127.0.0.1'))
})

test('an open UdpSocket keeps the process alive until it is closed', async (t) => {
  const result = await runNode(`
    const socket = new usockets.UdpSocket(null, { host: '127.0.0.1', onData() {} })
    setTimeout(() => { socket.close(); console.log('closed') }, 300).unref()
  `)
  t.is(result.code, 0, result.stderr)
  t.is(result.stdout.trim(), 'closed')
  t.true(result.elapsedMs >= 300)
})

test('examples/statsd.mjs aggregates counters and timings from node:dgram clients and says what the kernel dropped', async (t) => {
  const child = spawn(process.execPath, [`${ROOT}/examples/statsd.mjs`, '--port', '0', '--flush-ms', '300'], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => child.kill())
  let stderr = ''
  let stdout = ''
  child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk))
  child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk))
  await until(() => /listening on .*:(\d+)/.test(stderr), 'the collector listening', 5000)
  const port = Number(/listening on .*:(\d+)/.exec(stderr)![1])
  const client = dgram.createSocket('udp4')
  t.teardown(() => client.close())
  for (const datagram of ['hits:1|c', 'hits:2|c\nlatency:10|ms\nlatency:30|ms', 'not a metric']) client.send(datagram, port, '127.0.0.1')
  // The three datagrams may straddle a flush: add the flushes up.
  type Flush = { counters: Record<string, number>; timings: Record<string, { count: number }>; malformed: number; droppedByKernel: number }
  const flushes = () => stdout.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Flush)
  const total = (pick: (flush: Flush) => number) => flushes().reduce((sum, flush) => sum + pick(flush), 0)
  await until(() => total((flush) => flush.counters.hits ?? 0) === 3 && total((flush) => flush.malformed) === 1, 'the flushes to add up', 5000)
  t.is(total((flush) => flush.timings.latency?.count ?? 0), 2)
  t.deepEqual(flushes().find((flush) => flush.timings.latency !== undefined)?.timings, { latency: { count: 2, p50: 30, max: 30 } })
  t.is(total((flush) => flush.droppedByKernel), 0)
})

test('in a worker thread: a UdpSocket echoes, and the worker going away closes it (its port is free)', async (t) => {
  const worker = new Worker(
    `const { parentPort } = require('node:worker_threads')
     const { UdpSocket } = require(${JSON.stringify(ROOT)})
     const socket = new UdpSocket(null, { host: '127.0.0.1', exclusive: true, onData: (self, data, port, address) => self.send(data, port, address) })
     parentPort.postMessage(socket.port)`,
    { eval: true },
  )
  t.teardown(() => worker.terminate())
  const [port] = (await onceEvent(worker, 'message')) as [number]
  const peer = await nodeDgram('udp4', '127.0.0.1')
  t.teardown(() => peer.close())
  const echoed = onceEvent(peer, 'message')
  peer.send('ping', port, '127.0.0.1')
  t.is(((await echoed) as [Buffer])[0].toString(), 'ping')
  await worker.terminate()
  const loop = newLoop(t)
  const again = new UdpSocket(loop, { host: '127.0.0.1', port, exclusive: true, onData() {} })
  t.is(again.port, port)
})

/** A loop and a node:dgram peer on 127.0.0.1 whose received datagrams are collected as text. */
async function loopAndPeer(t: { teardown(fn: () => void): void }): Promise<{ loop: Loop; peer: dgram.Socket; got: string[] }> {
  const loop = newLoop(t)
  const peer = await nodeDgram('udp4', '127.0.0.1')
  t.teardown(() => peer.close())
  const got: string[] = []
  peer.on('message', (message) => got.push(message.toString()))
  return { loop, peer, got }
}

test('coalesced sends: send() in onData joins one sendmmsg at the end of the batch, a copy of the bytes, in order with sendMany and close()', async (t) => {
  const { loop, peer, got } = await loopAndPeer(t)
  const peerPort = peer.address().port
  const results: boolean[] = []
  const scratch = Buffer.alloc(2)
  let sendDroppedAfter = -1
  const socket = new UdpSocket(loop, {
    host: '127.0.0.1',
    onData(self, data) {
      const n = data.toString()
      // One scratch buffer, rewritten between sends: each datagram keeps what it was sent with.
      for (const suffix of ['a', 'b']) {
        scratch.write(`${n}${suffix}`)
        results.push(self.send(scratch, peerPort, '127.0.0.1'))
      }
      self.sendMany([Buffer.from(`${n}m`), peerPort, '127.0.0.1'])
      results.push(self.send(`${n}z`, peerPort, '127.0.0.1'))
      if (n === '3') {
        self.close() // what was taken before the close still leaves
        sendDroppedAfter = self.sendDropped
      }
    },
  })
  for (const n of ['1', '2', '3']) peer.send(n, socket.port, '127.0.0.1')
  await until(() => got.length === 12, `12 datagrams (got ${JSON.stringify(got)})`)
  const byRound = ['1', '2', '3'].map((n) => got.filter((text) => text.startsWith(n)))
  t.deepEqual(byRound, [
    ['1a', '1b', '1m', '1z'],
    ['2a', '2b', '2m', '2z'],
    ['3a', '3b', '3m', '3z'],
  ])
  t.true(results.every((taken) => taken))
  t.is(sendDroppedAfter, 0)
})

test('coalesced sends: a datagram the kernel refuses at the flush goes to onError and sendDropped; the others of the batch still leave', async (t) => {
  const { loop, peer, got } = await loopAndPeer(t)
  const errors: string[] = []
  const socket = new UdpSocket(loop, {
    host: '0.0.0.0',
    onData(self) {
      t.true(self.send('before', peer.address().port, '127.0.0.1'))
      // Broadcast without setBroadcast: EACCES, but only when the batch is flushed.
      t.true(self.send('refused', 9, '255.255.255.255'))
      t.true(self.send('after', peer.address().port, '127.0.0.1'))
    },
    onError: (_self, err) => errors.push(err.code),
  })
  peer.send('go', socket.port, '127.0.0.1')
  await until(() => got.length === 2 && errors.length === 1, `the two datagrams and the error (got ${JSON.stringify(got)}, ${JSON.stringify(errors)})`)
  t.deepEqual(got, ['before', 'after'])
  t.deepEqual(errors, ['EACCES'])
  t.is(socket.sendDropped, 1)
})

test('coalesceSends: false sends at once from onData (the refusal is the return value and onError right away)', async (t) => {
  const { loop, peer, got } = await loopAndPeer(t)
  const returned: boolean[] = []
  const errors: string[] = []
  const socket = new UdpSocket(loop, {
    host: '0.0.0.0',
    coalesceSends: false,
    onData(self) {
      returned.push(self.send('direct', peer.address().port, '127.0.0.1'))
      returned.push(self.send('refused', 9, '255.255.255.255'))
    },
    onError: (_self, err) => errors.push(err.code),
  })
  peer.send('go', socket.port, '127.0.0.1')
  await until(() => got.length === 1 && errors.length === 1, 'the datagram and the error')
  t.deepEqual(returned, [true, false])
  t.deepEqual(errors, ['EACCES'])
  t.is(socket.sendDropped, 0)
  t.throws(() => new UdpSocket(loop, { onData() {}, coalesceSends: 1 as never }), { instanceOf: TypeError, message: /coalesceSends/ })
})
