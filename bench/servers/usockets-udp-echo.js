// UDP echo server on usockets-rs, measured by bench/udp.js against node-dgram-echo.js.
// Usage: node usockets-udp-echo.js [port] [--borrow] (0 or none: ephemeral). Prints {"port": N}
// first. --borrow: the borrowData option (onData's Buffer is valid until the handler returns).
// A datagram the kernel cannot take now is dropped (send returns false), as UDP servers do;
// the load generator counts it as lost.
'use strict'

const { Loop, UdpSocket } = require('../..')

const args = process.argv.slice(2)
const socket = new UdpSocket(new Loop(), {
  host: '127.0.0.1',
  port: Number(args.find((arg) => !arg.startsWith('--')) ?? 0),
  borrowData: args.includes('--borrow'),
  onData: (self, data, port, address) => self.send(data, port, address),
})
console.log(JSON.stringify({ port: socket.port }))
