// UDP echo server on node:dgram, the baseline of bench/udp.js.
// Usage: node node-dgram-echo.js [port] (0 or none: ephemeral). Prints {"port": N} first.
'use strict'

const dgram = require('node:dgram')

const socket = dgram.createSocket('udp4')
socket.on('message', (message, peer) => socket.send(message, peer.port, peer.address))
// A send the kernel refuses (an ICMP error of a flow that went away) must not end the server.
socket.on('error', () => {})
socket.bind(Number(process.argv[2] ?? 0), '127.0.0.1', () => console.log(JSON.stringify({ port: socket.address().port })))
