// Echo server on node:net, the baseline that bench/tcp.js measures usockets-rs against.
// Usage: node node-net-echo.js [port] (0 or none: an ephemeral port). Prints {"port": N} as
// its first stdout line once listening.
'use strict'

const net = require('node:net')

const port = Number(process.argv[2] ?? 0)

// noDelay: usockets-rs sets TCP_NODELAY on every socket, so Nagle's algorithm would only
// hold back this side's echoes and skew the comparison.
const server = net.createServer({ noDelay: true }, (socket) => {
  // Backpressure as socket.pipe(socket) does it: stop reading while the write side is full, so
  // an unbounded writer cannot make the server buffer without bound.
  socket.on('data', (data) => {
    if (!socket.write(data)) socket.pause()
  })
  socket.on('drain', () => socket.resume())
  // The load generator closes connections with echoes still in flight when a run ends; the
  // resets that follow are expected, and an 'error' without a listener would crash the server.
  socket.on('error', () => {})
})
server.listen(port, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })))
