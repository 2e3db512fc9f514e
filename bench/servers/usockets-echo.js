// Echo server on usockets-rs, measured by bench/tcp.js against node-net-echo.js.
// Usage: node usockets-echo.js [port] (0 or none: an ephemeral port). Prints {"port": N} as
// its first stdout line once listening. Needs the TCP API (SocketContext).
'use strict'

const { Loop, SocketContext } = require('../..')

const port = Number(process.argv[2] ?? 0)

const context = new SocketContext(Loop.default())
// send, not write: write may take only part of the bytes and leave the rest to the caller,
// send buffers it natively, like node:net's socket.write does in JS. The load generator's
// in-flight window bounds how much either server ever buffers.
context.onData((socket, data) => socket.send(data))
const listenSocket = context.listen('127.0.0.1', port)
console.log(JSON.stringify({ port: listenSocket.port }))
