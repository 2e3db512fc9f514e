// Echo server on node:tls, the baseline that bench/tls.js measures usockets-rs against.
// Usage: node node-tls-echo.js [port] (0 or none: an ephemeral port). Prints {"port": N} as
// its first stdout line once listening. Its certificate is test/fixtures/tls/server.pem (for
// localhost, signed by test/fixtures/tls/ca.pem, which the load generator trusts).
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const tls = require('node:tls')

const FIXTURES = path.join(__dirname, '..', '..', 'test', 'fixtures', 'tls')
const port = Number(process.argv[2] ?? 0)

// noDelay: as in node-net-echo.js, Nagle's algorithm would only hold back this side's echoes.
const server = tls.createServer(
  {
    key: fs.readFileSync(path.join(FIXTURES, 'server.key')),
    cert: fs.readFileSync(path.join(FIXTURES, 'server.pem')),
    noDelay: true,
  },
  (socket) => {
    // Backpressure as in node-net-echo.js.
    socket.on('data', (data) => {
      if (!socket.write(data)) socket.pause()
    })
    socket.on('drain', () => socket.resume())
    // Runs end with connections closed mid-echo; see node-net-echo.js.
    socket.on('error', () => {})
  },
)
// A handshake the client abandons (a run ending mid-handshake) must not crash the server.
server.on('tlsClientError', () => {})
server.listen(port, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })))
