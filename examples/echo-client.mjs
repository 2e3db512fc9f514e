// An echo client: sends each message, waits for its echo, prints it with the round-trip time.
//
//   node examples/echo-client.mjs [--port 3000] [--host 127.0.0.1] [--tls [--ca ca.pem]] [message ...]
//
// With --tls it verifies the server's certificate against --ca (default: the test CA of
// test/fixtures/tls, which issued the example server's certificate).
import { parseArgs } from 'node:util'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const { Loop, SocketContext } = createRequire(import.meta.url)('../index.js')

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: 'string', default: '3000' },
    host: { type: 'string', default: '127.0.0.1' },
    tls: { type: 'boolean', default: false },
    ca: { type: 'string', default: fileURLToPath(new URL('../test/fixtures/tls/ca.pem', import.meta.url)) },
  },
})
const messages = positionals.length > 0 ? positionals : ['hello', 'from', 'usockets-rs']

let pending = Buffer.alloc(0)
let sentAt = 0
let next = 0

function sendNext(socket) {
  if (next === messages.length) {
    socket.shutdown() // done: the server finishes too, then the socket closes
    return
  }
  pending = Buffer.from(messages[next++])
  sentAt = performance.now()
  socket.send(pending)
}

let received = Buffer.alloc(0)
new SocketContext(Loop.default(), { tls: values.tls ? { caFileName: values.ca } : undefined })
  .onOpen((socket) => sendNext(socket))
  .onData((socket, data) => {
    received = Buffer.concat([received, data])
    if (received.length < pending.length) return
    console.log(`${received.toString()}  (${(performance.now() - sentAt).toFixed(2)} ms)`)
    received = Buffer.alloc(0)
    sendNext(socket)
  })
  .onConnectError((socket, code, error) => {
    console.error(`cannot connect to ${values.host}:${values.port}: ${error.code}`)
    process.exitCode = 1
  })
  .onClose((socket, code, reason) => {
    if (code !== 0) {
      console.error(`connection lost: ${reason?.code ?? code}`)
      process.exitCode = 1
    }
  })
  .connect(values.host, Number(values.port))
