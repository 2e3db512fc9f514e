// UDP echo server on usockets-rs, measured by bench/udp.js against node-dgram-echo.js.
// Usage: node usockets-udp-echo.js [port] (0 or none: ephemeral). Prints {"port": N} first.
// A datagram the kernel cannot take now is dropped (send returns false), as UDP servers do;
// the load generator counts it as lost.
'use strict'

const { Loop, UdpSocket } = require('../..')

const socket = new UdpSocket(new Loop(), {
  host: '127.0.0.1',
  port: Number(process.argv[2] ?? 0),
  onData: (self, data, port, address) => self.send(data, port, address),
})
console.log(JSON.stringify({ port: socket.port }))
