// UDP echo server on Bun (`Bun.udpSocket`), the peer of bench/udp.js. Run by the Bun binary.
// Usage: bun bun-udp-echo.js [port] (0 or none: ephemeral). Prints {"port": N} first.
const socket = await Bun.udpSocket({
  hostname: '127.0.0.1',
  port: Number(process.argv[2] ?? 0),
  socket: {
    data(self, data, port, address) {
      // A flow that went away answers with an ICMP error, which Bun throws at the next send.
      try {
        self.send(data, port, address)
      } catch {}
    },
    error() {},
  },
})
console.log(JSON.stringify({ port: socket.port }))
