// Echo server on Bun (`Bun.listen`), the peer bench/tcp.js and bench/tls.js measure usockets-rs
// against beside node:net / node:tls. Run by the Bun binary (bench/echo-harness.js installs it).
// Usage: bun bun-echo.js [port] [--tls] (port 0 or none: an ephemeral port). Prints
// {"port": N} as its first stdout line once listening. With --tls its certificate is
// test/fixtures/tls/server.pem, as the other servers'.
//
// Backpressure as a careful Bun user writes it (and as the other echo servers do): `write`
// takes what the kernel (or the TLS layer) accepts now and returns how many bytes that was; the
// rest is queued, reading pauses until `drain` has written the queue, so an unbounded writer
// cannot make the server buffer without bound.
const path = require('node:path')

const FIXTURES = path.join(__dirname, '..', '..', 'test', 'fixtures', 'tls')
const args = process.argv.slice(2)
const tls = args.includes('--tls')
const port = Number(args.find((arg) => !arg.startsWith('--')) ?? 0)

function flush(socket) {
  const pending = socket.data
  while (pending.length > 0) {
    const chunk = pending[0]
    const written = socket.write(chunk)
    if (written < chunk.length) {
      pending[0] = chunk.subarray(Math.max(written, 0))
      return false
    }
    pending.shift()
  }
  return true
}

const server = Bun.listen({
  hostname: '127.0.0.1',
  port,
  tls: tls
    ? { key: Bun.file(path.join(FIXTURES, 'server.key')), cert: Bun.file(path.join(FIXTURES, 'server.pem')) }
    : undefined,
  socket: {
    open(socket) {
      socket.data = []
      socket.setNoDelay(true)
    },
    data(socket, data) {
      socket.data.push(data)
      if (!flush(socket)) socket.pause()
    },
    drain(socket) {
      if (flush(socket)) socket.resume()
    },
    // Runs end with connections closed mid-echo; nothing to report.
    error() {},
  },
})
console.log(JSON.stringify({ port: server.port }))
