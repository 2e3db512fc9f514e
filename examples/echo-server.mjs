// An echo server: every byte a client sends comes back.
//
//   node examples/echo-server.mjs [--port 3000] [--host 127.0.0.1]     (or: npm start)
//
// Talk to it with `node examples/echo-client.mjs` or `nc 127.0.0.1 3000`.
import { parseArgs } from 'node:util'
import { createRequire } from 'node:module'

const { Loop, SocketContext } = createRequire(import.meta.url)('../index.js')

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '3000' },
    host: { type: 'string', default: '127.0.0.1' },
    quiet: { type: 'boolean', default: false },
  },
})
const log = values.quiet ? () => {} : console.log

const context = new SocketContext(Loop.default())
  .onOpen((socket, isClient, remoteAddress) => log(`+ ${remoteAddress}:${socket.remotePort}`))
  // send() queues natively whatever the kernel does not take at once, so nothing is lost.
  .onData((socket, data) => socket.send(data))
  .onEnd((socket) => socket.shutdown()) // the client finished: finish too, after the echo
  .onClose((socket, code) => log(`- ${socket.remoteAddress}:${socket.remotePort}${code ? ` (error ${code})` : ''}`))

const server = context.listen(values.host, Number(values.port))
console.log(`echo server listening on ${values.host}:${server.port}`)
console.log(`try: node examples/echo-client.mjs --port ${server.port} hello   (or: nc ${values.host} ${server.port})`)

process.on('SIGINT', () => {
  server.close()
  context.close()
})
