// One loop per core: N worker threads, each with its own Loop.default() (its own loop thread),
// all listening on one port. The kernel spreads new connections over them (SO_REUSEPORT, which
// listen() sets unless the port is exclusive), so no thread hands connections to another.
//
//   node examples/cluster.mjs [--port 3000] [--host 0.0.0.0] [--workers N] [--grace-ms 5000]
//   npm run cluster
//
// Each connection is greeted with "worker <n>\n", then echoed; the line "crash\n" makes its worker
// throw (to try out recovery). The main thread:
// - replaces a worker that dies (an uncaught exception, or process.exit in it): the dead
//   worker's connections close with it, the others' keep being served;
// - on SIGTERM or SIGINT asks every worker to stop: it closes its listener at once (new
//   connections go to nobody, so a supervisor can start the next version), ends (FIN) its open
//   connections, waits up to --grace-ms for their peers to finish, then closes what is left. The
//   process exits once every worker has.
// Prints one JSON line per event on stdout ({event: 'listening', worker, port}, 'replaced',
// {event: 'draining', worker, open} once a stopping worker closed its listener, 'stopped').
import { availableParallelism } from 'node:os'
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'

const { Loop, SocketContext } = createRequire(import.meta.url)('../index.js')

const print = (line) => process.stdout.write(`${JSON.stringify(line)}\n`)

if (isMainThread) {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '3000' },
      host: { type: 'string', default: '0.0.0.0' },
      workers: { type: 'string', default: String(availableParallelism()) },
      'grace-ms': { type: 'string', default: '5000' },
    },
  })
  const settings = { port: Number(values.port), host: values.host, graceMs: Number(values['grace-ms']) }
  if (settings.port === 0) throw new RangeError('--port must be a fixed port: workers share it, and port 0 gives each its own')
  const count = Number(values.workers)
  const workers = new Map()
  let stopping = false

  const start = (index) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: { index, ...settings } })
    workers.set(index, worker)
    worker.on('error', (err) => console.error(`worker ${index}: ${err.stack ?? err}`))
    worker.on('exit', (code) => {
      workers.delete(index)
      if (!stopping) {
        print({ event: 'replaced', worker: index, exitCode: code })
        start(index)
      } else if (workers.size === 0) {
        print({ event: 'stopped' })
      }
    })
  }
  for (let index = 0; index < count; index++) start(index)

  const stop = () => {
    if (stopping) return
    stopping = true
    for (const worker of workers.values()) worker.postMessage('stop')
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
} else {
  const { index, port, host, graceMs } = workerData
  const context = new SocketContext(Loop.default())
  const open = new Set()
  context.onOpen((socket) => {
    open.add(socket)
    socket.send(`worker ${index}\n`)
  })
  context.onData((socket, data) => {
    if (data.toString() === 'crash\n') throw new Error(`worker ${index} was asked to crash`)
    socket.send(data)
  })
  // The peer finished: finish too (the socket closes once both sides have).
  context.onEnd((socket) => socket.shutdown())
  context.onClose((socket) => open.delete(socket))
  const listener = context.listen(host, port)
  print({ event: 'listening', worker: index, port: listener.port })

  parentPort.once('message', () => {
    listener.close()
    print({ event: 'draining', worker: index, open: open.size })
    for (const socket of open) socket.shutdown()
    // What is still open after the grace period is closed; then nothing holds the thread (the
    // message port no longer does either), and it exits.
    setTimeout(() => {
      for (const socket of open) socket.close()
    }, graceMs).unref()
    parentPort.unref()
  })
}
