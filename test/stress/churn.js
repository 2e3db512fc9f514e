'use strict'
// 200,000 connect / echo / close cycles on one loop (our client against our server, 100 in
// flight): afterwards, with a GC, the fd count is back to what it was after a warm-up of
// 10,000 cycles and RSS has grown by at most 32 MiB. Env: STRESS_CYCLES (200000).

const { Loop, SocketContext } = require('../..')
const { MiB, Report, fds, mib, rss, settle } = require('./common')

const CYCLES = Number(process.env.STRESS_CYCLES ?? 200000)
const WARMUP = Math.min(10000, CYCLES / 10)
const IN_FLIGHT = 100
const RSS_GROWTH_LIMIT = 32 * MiB

async function main() {
  const report = new Report('churn')
  const loop = new Loop()
  const server = new SocketContext(loop)
  server.onData((socket, data) => socket.send(data))
  server.onEnd((socket) => socket.close())
  const listener = server.listen('127.0.0.1', 0)
  const client = new SocketContext(loop)
  let started = 0
  let finished = 0
  let failed = 0
  let onCycle = () => {}
  const next = () => {
    if (started >= CYCLES) return
    started++
    client.connect('127.0.0.1', listener.port)
  }
  client.onOpen((socket) => socket.write(Buffer.from('ping!ping')))
  client.onData((socket) => socket.close())
  client.onClose(() => {
    finished++
    onCycle()
    next()
  })
  client.onConnectError(() => {
    failed++
    finished++
    onCycle()
    next()
  })
  const reach = (count) =>
    new Promise((resolve) => {
      onCycle = () => finished >= count && resolve()
    })
  const t0 = Date.now()
  for (let i = 0; i < IN_FLIGHT; i++) next()
  await reach(WARMUP)
  // Let the warm-up's last cycles finish before measuring (no new ones start meanwhile).
  const pausedAt = started
  started = CYCLES
  await reach(pausedAt)
  await settle()
  const fdsWarm = fds()
  const rssWarm = rss()
  started = pausedAt
  for (let i = 0; i < IN_FLIGHT; i++) next()
  await reach(CYCLES)
  const seconds = (Date.now() - t0) / 1000
  await settle()
  const fdsAfter = fds()
  const rssAfter = rss()
  report.check(failed === 0, `${failed} connects failed`)
  report.check(fdsAfter <= fdsWarm, `fds ${fdsWarm} after the warm-up, ${fdsAfter} at the end`)
  report.check(rssAfter - rssWarm <= RSS_GROWTH_LIMIT, `RSS grew ${mib(rssAfter - rssWarm)} MiB (limit 32)`)
  listener.close()
  client.close()
  server.close()
  loop.close()
  report.set({ cycles: CYCLES, cyclesPerSecond: Math.round(CYCLES / seconds), fdsWarm, fdsAfter, rssGrowthMiB: mib(rssAfter - rssWarm) })
  report.finish()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
