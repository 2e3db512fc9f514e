'use strict'
// Accept storms past the descriptor limit: the server runs in a child process under
// `ulimit -n 256` (soft and hard: Node raises a lowered soft limit back to the hard one at
// startup) and 400 clients connect from this process. Once accept fails (EMFILE), the listener
// rests instead of spinning (the server uses little CPU while exhausted), the sockets already
// open keep echoing, and when clients leave, the ones waiting in the backlog are accepted and
// served. The server answers `stats` with its open-socket count and CPU time, and `quit` by
// closing everything and exiting 0.

const { spawn } = require('node:child_process')
const net = require('node:net')
const readline = require('node:readline')
const { Report, sleep } = require('./common')

const FD_LIMIT = 256
const CLIENTS = 400
const EXHAUSTED_CPU_LIMIT = 0.2 // of one core
const DEADLINE_MS = 60_000

function serve() {
  const { Loop, SocketContext } = require('../..')
  const loop = new Loop()
  const ctx = new SocketContext(loop)
  let open = 0
  ctx.onOpen(() => open++)
  ctx.onClose(() => open--)
  ctx.onData((socket, data) => socket.send(data))
  ctx.onEnd((socket) => socket.close())
  const listener = ctx.listen('127.0.0.1', 0)
  const say = (line) => process.stdout.write(`${line}\n`)
  const commands = readline.createInterface({ input: process.stdin })
  commands.on('line', (line) => {
    if (line === 'stats') {
      const cpu = process.cpuUsage()
      say(`stats ${open} ${cpu.user + cpu.system}`)
    } else if (line === 'quit') {
      commands.close()
      listener.close()
      ctx.close()
      loop.close()
      process.stdin.destroy()
    }
  })
  say(`port ${listener.port}`)
}

/** The server child and a request/answer channel over its stdin/stdout. */
function startServer() {
  const child = spawn('sh', ['-c', `ulimit -n ${FD_LIMIT} && exec "$0" "$1" --server`, process.execPath, __filename], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const lines = readline.createInterface({ input: child.stdout })
  const pending = []
  lines.on('line', (line) => pending.shift()?.(line))
  const next = () => new Promise((resolve) => pending.push(resolve))
  const stats = async () => {
    const answer = next()
    child.stdin.write('stats\n')
    const [, open, cpuMicros] = (await answer).split(' ').map(Number)
    return { open, cpuMicros }
  }
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })))
  return { child, next, stats, exited }
}

function echo(socket, text) {
  return new Promise((resolve) => {
    socket.once('data', () => resolve())
    socket.write(text)
  })
}

async function main() {
  const report = new Report('fd-exhaustion')
  const server = startServer()
  const deadline = setTimeout(() => {
    console.error(`fd-exhaustion: no result after ${DEADLINE_MS} ms`)
    server.child.kill('SIGKILL')
    process.exit(1)
  }, DEADLINE_MS)
  const port = Number((await server.next()).split(' ')[1])
  const sockets = []
  const served = new Set()
  const errors = []
  for (let i = 0; i < CLIENTS; i++) {
    const socket = net.connect(port, '127.0.0.1')
    socket.on('error', (err) => errors.push(err.code))
    sockets.push(socket)
    // Connected (in the backlog) is not accepted: count the ones the server echoes.
    socket.once('connect', () => echo(socket, 'first').then(() => served.add(socket)))
  }
  await sleep(2000)
  const before = await server.stats()
  await sleep(2000)
  const after = await server.stats()
  const exhaustedCpu = (after.cpuMicros - before.cpuMicros) / 1e6 / 2
  const waitingWhenExhausted = CLIENTS - served.size
  // Sockets served before the limit still work while the listener is exhausted.
  await Promise.all([...served].slice(0, 20).map((s) => echo(s, 'again')))
  // Served ones leave, so that the server has descriptors again.
  for (const socket of [...served].slice(0, CLIENTS / 2)) {
    socket.destroy()
    served.delete(socket)
    sockets.splice(sockets.indexOf(socket), 1)
  }
  const left = CLIENTS / 2
  let waiting = sockets.length - served.size
  for (let i = 0; i < 50 && waiting > 0; i++) {
    await sleep(200)
    waiting = sockets.length - served.size
  }
  const final = await server.stats()
  for (const socket of sockets) socket.destroy()
  server.child.stdin.write('quit\n')
  const exit = await server.exited
  clearTimeout(deadline)
  report.check(waitingWhenExhausted > 0, `nobody waited: the limit (${FD_LIMIT}) was never reached`)
  report.check(after.open < FD_LIMIT, `${after.open} sockets open under a limit of ${FD_LIMIT}`)
  report.check(exhaustedCpu < EXHAUSTED_CPU_LIMIT, `${(exhaustedCpu * 100).toFixed(1)}% of a core while exhausted`)
  report.check(waiting === 0, `${waiting} clients still unserved after ${left} others left`)
  report.check(errors.length === 0, `client errors: ${[...new Set(errors)].join(', ')}`)
  report.check(exit.code === 0, `the server exited with ${exit.code ?? exit.signal}`)
  report.set({
    fdLimit: FD_LIMIT,
    clients: CLIENTS,
    openWhenExhausted: after.open,
    waitingWhenExhausted,
    openAfterOthersLeft: final.open,
    exhaustedCpuPercent: Math.round(exhaustedCpu * 1000) / 10,
  })
  report.finish()
}

if (process.argv[2] === '--server') serve()
else
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
