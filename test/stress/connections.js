'use strict'
// 10,000 concurrent connections held by one loop, each echoing: every connection opens and
// echoes, all stay open at once, then each echoes again. Reports the server's RSS per held
// connection (after a GC). The clients are node:net sockets in a child process, so their memory
// and fds are not counted. Env: STRESS_CONNECTIONS (10000).

const { spawn } = require('node:child_process')
const net = require('node:net')
const readline = require('node:readline')
const { Loop, SocketContext } = require('../..')
const { Report, mib, rss, settle, socketFds } = require('./common')

const COUNT = Number(process.env.STRESS_CONNECTIONS ?? 10000)
const CONNECTS_IN_FLIGHT = 256
const MESSAGE = Buffer.alloc(32, 'e')

/** The client side: opens `count` connections, reports `held` once each echoed, `done` after the second round. */
function runClients(port, count) {
  const sockets = []
  let opening = 0
  let echoed = 0
  const say = (line) => process.stdout.write(`${line}\n`)
  const echoOnce = (socket, then) => {
    let got = 0
    const onData = (data) => {
      got += data.length
      if (got >= MESSAGE.length) {
        socket.off('data', onData)
        then()
      }
    }
    socket.on('data', onData)
    socket.write(MESSAGE)
  }
  const openMore = () => {
    while (opening < CONNECTS_IN_FLIGHT && sockets.length < count) {
      opening++
      const socket = net.connect(port, '127.0.0.1')
      sockets.push(socket)
      socket.on('error', (err) => say(`error ${err.code}`))
      socket.once('connect', () =>
        echoOnce(socket, () => {
          opening--
          if (++echoed === count) say('held')
          else openMore()
        }),
      )
    }
  }
  openMore()
  const commands = readline.createInterface({ input: process.stdin })
  commands.on('line', (line) => {
    if (line !== 'again') return
    const started = Date.now()
    let second = 0
    for (const socket of sockets) {
      echoOnce(socket, () => {
        if (++second === count) {
          say(`done ${Date.now() - started}`)
          commands.close()
          for (const s of sockets) s.end()
        }
      })
    }
  })
}

async function main() {
  const report = new Report('connections')
  const loop = new Loop()
  const ctx = new SocketContext(loop)
  let open = 0
  let opened = 0
  let closed = 0
  ctx.onOpen(() => {
    open++
    opened++
  })
  ctx.onData((socket, data) => socket.send(data))
  ctx.onEnd((socket) => socket.close())
  ctx.onClose(() => {
    open--
    closed++
  })
  const listener = ctx.listen('127.0.0.1', 0)
  await settle()
  const rssBefore = rss()
  const fdsBefore = socketFds()
  const started = Date.now()
  const child = spawn(process.execPath, [__filename, '--clients', String(listener.port), String(COUNT)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const lines = readline.createInterface({ input: child.stdout })
  const errors = []
  const heard = (word) =>
    new Promise((resolve) => {
      const onLine = (line) => {
        if (line.startsWith('error')) errors.push(line)
        if (line.startsWith(word)) {
          lines.off('line', onLine)
          resolve(line)
        }
      }
      lines.on('line', onLine)
    })
  await heard('held')
  const openSeconds = (Date.now() - started) / 1000
  await settle()
  const rssHeld = rss()
  report.check(open === COUNT, `${open} sockets open at once, expected ${COUNT}`)
  child.stdin.write('again\n')
  const done = await heard('done')
  await new Promise((resolve) => child.on('exit', resolve))
  for (let i = 0; i < 100 && closed < COUNT; i++) await new Promise((r) => setTimeout(r, 50))
  report.check(closed === COUNT, `${closed} of ${COUNT} closed after the clients left`)
  report.check(errors.length === 0, `client errors: ${errors.slice(0, 3).join(', ')}`)
  listener.close()
  ctx.close()
  loop.close()
  await settle()
  report.check(socketFds() <= fdsBefore, `socket fds ${fdsBefore} before, ${socketFds()} after`)
  report.set({
    connections: COUNT,
    openedPerSecond: Math.round(COUNT / openSeconds),
    secondRoundMs: Number(done.split(' ')[1]),
    rssHeldMiB: mib(rssHeld - rssBefore),
    rssPerConnectionKiB: Math.round((rssHeld - rssBefore) / COUNT / 102.4) / 10,
  })
  report.finish()
}

if (process.argv[2] === '--clients') runClients(Number(process.argv[3]), Number(process.argv[4]))
else main().catch((err) => {
  console.error(err)
  process.exit(1)
})
