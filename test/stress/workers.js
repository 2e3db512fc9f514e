'use strict'
// 100 rounds of a worker_thread with its own loop and 20 sockets in echo traffic (10 clients of
// its own listener), terminated mid-traffic: afterwards the process has as many threads and
// socket descriptors as after the first round, and no loop thread is left. Env:
// STRESS_WORKER_ROUNDS (100).

const { Worker, isMainThread, parentPort } = require('node:worker_threads')
const { loopThreads } = require('../fixtures/lib')
const { Report, settle, socketFds, threads } = require('./common')

const ROUNDS = Number(process.env.STRESS_WORKER_ROUNDS ?? 100)
const CLIENTS = 10 // and as many accepted sockets: 20 in traffic
const TERMINATE_AFTER_ECHOES = 200

function workerMain() {
  const { Loop, SocketContext } = require('../..')
  const loop = Loop.default()
  const server = new SocketContext(loop)
  server.onData((socket, data) => socket.send(data))
  const listener = server.listen('127.0.0.1', 0)
  const client = new SocketContext(loop)
  let echoes = 0
  client.onOpen((socket) => socket.write(Buffer.alloc(512, 'w')))
  client.onData((socket, data) => {
    socket.write(data)
    if (++echoes % 50 === 0) parentPort.postMessage(echoes)
  })
  for (let i = 0; i < CLIENTS; i++) client.connect('127.0.0.1', listener.port)
}

function round() {
  return new Promise((resolve, reject) => {
    const worker = new Worker(__filename)
    const timer = setTimeout(() => reject(new Error('a worker never reached its traffic')), 10000)
    worker.on('message', (echoes) => {
      if (echoes >= TERMINATE_AFTER_ECHOES) worker.terminate()
    })
    worker.on('error', reject)
    worker.on('exit', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

async function main() {
  const report = new Report('workers')
  const started = Date.now()
  await round()
  await settle()
  const threadsWarm = threads()
  const socketsWarm = socketFds()
  for (let i = 1; i < ROUNDS; i++) await round()
  await settle()
  report.check(threads() <= threadsWarm, `threads ${threadsWarm} after the first round, ${threads()} at the end`)
  report.check(socketFds() <= socketsWarm, `socket fds ${socketsWarm} after the first round, ${socketFds()} at the end`)
  report.check(loopThreads() === 0, `${loopThreads()} loop threads left`)
  report.set({ rounds: ROUNDS, seconds: (Date.now() - started) / 1000, threadsWarm, threadsEnd: threads() })
  report.finish()
}

if (isMainThread)
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
else workerMain()
