// Echo server on usockets-rs, measured by bench/tcp.js against node-net-echo.js and by
// bench/tls.js (with --tls) against node-tls-echo.js.
// Usage: node usockets-echo.js [port] [--tls] [--spin-us N] (port 0 or none: an ephemeral
// port). Prints {"port": N} as its first stdout line once listening. With --tls its
// certificate is test/fixtures/tls/server.pem, as node-tls-echo.js's. --spin-us sets the
// loop's spinMicroseconds (polling without sleeping for that long after each delivery).
'use strict'

const path = require('node:path')
const { parseArgs } = require('node:util')

const { Loop, SocketContext } = require('../..')

const FIXTURES = path.join(__dirname, '..', '..', 'test', 'fixtures', 'tls')
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { tls: { type: 'boolean', default: false }, 'spin-us': { type: 'string', default: '0' } },
})
const tls = values.tls
const port = Number(positionals[0] ?? 0)

// All TLS work happens on the loop thread (index.d.ts, SocketContext): the JS thread sees plaintext only.
const options = tls
  ? { tls: { keyFileName: path.join(FIXTURES, 'server.key'), certFileName: path.join(FIXTURES, 'server.pem') } }
  : {}
const context = new SocketContext(new Loop({ spinMicroseconds: Number(values['spin-us']) }), options)
// send, not write: write may take only part of the bytes and leave the rest to the caller,
// send buffers it natively, like node:net's socket.write does in JS. Backpressure as the other
// servers do it: stop reading while send's buffer is over the high-water mark, read again once
// it drained (onWritable), so an unbounded writer cannot make the server buffer without bound.
context.onData((socket, data) => {
  if (!socket.send(data)) socket.pause()
})
context.onWritable((socket) => socket.resume())
const listenSocket = context.listen('127.0.0.1', port)
console.log(JSON.stringify({ port: listenSocket.port }))
