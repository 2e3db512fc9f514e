// Echo server on usockets-rs, measured by bench/tcp.js against node-net-echo.js, by
// bench/tls.js (with --tls) against node-tls-echo.js, and by bench/workers.js (--workers N).
// Usage: node usockets-echo.js [port] [--tls | --starttls] [--spin-us N] [--workers N] [--borrow]
// [--thread-only] (port 0
// or none: an ephemeral port). Prints {"port": N} as its first stdout line once listening.
// With --tls its certificate is test/fixtures/tls/server.pem, as node-tls-echo.js's.
// --starttls: the same TLS server, reached the STARTTLS way: it listens in clear and upgrades
// every connection as it opens (the client's ClientHello, already on its way, is read-ahead
// the upgrade hands to the TLS session), so the bench compares upgraded sockets with sockets
// that began as TLS. --spin-us sets the
// loop's spinMicroseconds (polling without sleeping for that long after each delivery).
// --borrow: the context option borrowData (onData's Buffer is lent until the handler returns,
// so its batch goes back to the loop when the dispatch ends; the echo needs nothing longer).
// --thread-only: the loop option driveFromJavaScript: false (its thread always runs it).
// --workers N: N worker threads, each with its own loop, listening on one port
// (SO_REUSEPORT) as examples/cluster.mjs does; on SIGTERM it prints
// {"acceptedPerWorker": [...]} (connections each worker accepted) and exits.
'use strict'

const net = require('node:net')
const path = require('node:path')
const { parseArgs } = require('node:util')
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads')

const { Loop, SocketContext } = require('../..')

const FIXTURES = path.join(__dirname, '..', '..', 'test', 'fixtures', 'tls')
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    tls: { type: 'boolean', default: false },
    starttls: { type: 'boolean', default: false },
    borrow: { type: 'boolean', default: false },
    'spin-us': { type: 'string', default: '0' },
    'thread-only': { type: 'boolean', default: false },
    workers: { type: 'string', default: '0' },
  },
})
const workers = Number(values.workers)

/** Listens on `port` and echoes; returns the listen socket and a count of accepted connections. */
function serve(port) {
  // All TLS work happens on the loop thread (index.d.ts, SocketContext): the JS thread sees plaintext only.
  const tls = { keyFileName: path.join(FIXTURES, 'server.key'), certFileName: path.join(FIXTURES, 'server.pem') }
  const loop = new Loop({ spinMicroseconds: Number(values['spin-us']), driveFromJavaScript: !values['thread-only'] })
  const context = new SocketContext(loop, { tls: values.tls || values.starttls ? tls : undefined, borrowData: values.borrow })
  const accepted = { count: 0 }
  context.onOpen(() => accepted.count++)
  const listening = values.starttls ? new SocketContext(loop) : context
  if (values.starttls) listening.onOpen((socket) => context.upgrade(socket))
  // send, not write: write may take only part of the bytes and leave the rest to the caller,
  // send buffers it natively, like node:net's socket.write does in JS. Backpressure as the
  // other servers do it: stop reading while send's buffer is over the high-water mark, read
  // again once it drained (onWritable), so an unbounded writer cannot make the server buffer
  // without bound.
  context.onData((socket, data) => {
    if (!socket.send(data)) socket.pause()
  })
  context.onWritable((socket) => socket.resume())
  return { listenSocket: listening.listen('127.0.0.1', port), accepted }
}

/** A port that was free a moment ago: the workers must all listen on the same, fixed one. */
function freePort() {
  return new Promise((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

async function startWorkers() {
  const port = Number(positionals[0] ?? 0) || (await freePort())
  const threads = Array.from({ length: workers }, () => new Worker(__filename, { argv: process.argv.slice(2), workerData: { port } }))
  await Promise.all(threads.map((thread) => new Promise((resolve) => thread.once('message', resolve))))
  console.log(JSON.stringify({ port }))
  process.once('SIGTERM', async () => {
    const counts = await Promise.all(
      threads.map((thread) => {
        const reply = new Promise((resolve) => thread.once('message', resolve))
        thread.postMessage('count')
        return reply
      }),
    )
    console.log(JSON.stringify({ acceptedPerWorker: counts }))
    process.exit(0)
  })
}

if (!isMainThread) {
  const { accepted } = serve(workerData.port)
  parentPort.postMessage('listening')
  parentPort.on('message', () => parentPort.postMessage(accepted.count))
} else if (workers > 0) {
  startWorkers()
} else {
  const { listenSocket } = serve(Number(positionals[0] ?? 0))
  console.log(JSON.stringify({ port: listenSocket.port }))
}
