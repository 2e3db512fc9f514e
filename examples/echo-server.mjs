// An echo server: every byte a client sends comes back.
//
//   node examples/echo-server.mjs [--port 3000] [--host 127.0.0.1] [--tls [--key k.pem --cert c.pem]]
//   npm start    /    npm start -- --tls   (npm start --tls works too: npm passes it as npm_config_tls)
//
// Talk to it with `node examples/echo-client.mjs [--tls]`, `nc 127.0.0.1 3000`, or for TLS
// `openssl s_client -connect 127.0.0.1:3000 -CAfile test/fixtures/tls/ca.pem`.
// Without --key/--cert, TLS uses the test certificate for localhost / 127.0.0.1 of
// test/fixtures/tls (issued by its test CA, ca.pem: for trying things out only).
import { parseArgs } from 'node:util'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const { Loop, SocketContext } = createRequire(import.meta.url)('../index.js')
const fixture = (name) => fileURLToPath(new URL(`../test/fixtures/tls/${name}`, import.meta.url))

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '3000' },
    host: { type: 'string', default: '127.0.0.1' },
    quiet: { type: 'boolean', default: false },
    tls: { type: 'boolean', default: process.env.npm_config_tls === 'true' },
    key: { type: 'string', default: fixture('server.key') },
    cert: { type: 'string', default: fixture('server.pem') },
  },
})
const log = values.quiet ? () => {} : console.log
// The handshake and all crypto run on the loop's thread; handlers see plaintext.
const tls = values.tls ? { keyFileName: values.key, certFileName: values.cert } : undefined

const context = new SocketContext(Loop.default(), { tls })
  .onOpen((socket, isClient, remoteAddress) => log(`+ ${remoteAddress}:${socket.remotePort}`))
  // send() queues natively whatever the kernel does not take at once, so nothing is lost.
  .onData((socket, data) => socket.send(data))
  .onEnd((socket) => socket.shutdown()) // the client finished: finish too, after the echo
  .onClose((socket, code) => log(`- ${socket.remoteAddress}:${socket.remotePort}${code ? ` (error ${code})` : ''}`))

const server = context.listen(values.host, Number(values.port))
console.log(`${tls ? 'TLS ' : ''}echo server listening on ${values.host}:${server.port}`)
if (tls) console.log(`try: node examples/echo-client.mjs --tls --port ${server.port} hello`)
else console.log(`try: node examples/echo-client.mjs --port ${server.port} hello   (or: nc ${values.host} ${server.port})`)

process.on('SIGINT', () => {
  server.close()
  context.close()
})
