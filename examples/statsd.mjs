// A StatsD-style metrics collector on UDP: clients send lines such as `hits:1|c` (a counter)
// or `latency:12.5|ms` (a timing), one or more per datagram, and every --flush-ms it prints
// what it aggregated as one JSON line, and how many datagrams the kernel dropped because this
// process fell behind (UdpSocket.receivedDropped: loss you can see instead of guess).
//
//   node examples/statsd.mjs [--port 8125] [--host 127.0.0.1] [--flush-ms 10000]
//   npm run statsd
//
// Try it: `echo "hits:1|c" | nc -u -w0 127.0.0.1 8125`, or from Node:
//   require('node:dgram').createSocket('udp4').send('hits:1|c\nlatency:12|ms', 8125, '127.0.0.1')
// Malformed lines are counted, not fatal: a collector must not die of a bad packet.
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'

const { Loop, UdpSocket } = createRequire(import.meta.url)('../index.js')

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8125' },
    host: { type: 'string', default: '127.0.0.1' },
    'flush-ms': { type: 'string', default: '10000' },
  },
})

let counters = new Map()
let timings = new Map()
let malformed = 0

function record(line) {
  const match = /^([\w.-]+):(-?\d+(?:\.\d+)?)\|(c|ms|g)$/.exec(line)
  if (match === null) {
    malformed++
    return
  }
  const [, name, text, type] = match
  const value = Number(text)
  if (type === 'ms') timings.set(name, [...(timings.get(name) ?? []), value])
  else counters.set(name, type === 'g' ? value : (counters.get(name) ?? 0) + value)
}

const socket = new UdpSocket(Loop.default(), {
  host: values.host,
  port: Number(values.port),
  onData(_socket, data) {
    for (const line of data.toString('utf8').split('\n')) if (line !== '') record(line)
  },
})
console.error(`statsd: listening on ${socket.address}:${socket.port}`)

const flusher = setInterval(() => {
  const summary = {
    at: new Date().toISOString(),
    counters: Object.fromEntries(counters),
    timings: Object.fromEntries(
      [...timings].map(([name, samples]) => {
        const sorted = samples.toSorted((a, b) => a - b)
        return [name, { count: sorted.length, p50: sorted[sorted.length >> 1], max: sorted.at(-1) }]
      }),
    ),
    malformed,
    droppedByKernel: socket.receivedDropped,
  }
  console.log(JSON.stringify(summary))
  counters = new Map()
  timings = new Map()
  malformed = 0
}, Number(values['flush-ms']))

const stop = () => {
  clearInterval(flusher)
  socket.close()
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
