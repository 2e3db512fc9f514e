// An SMTP-style STARTTLS server: it greets in clear, answers EHLO with its extensions
// (STARTTLS among them), and on STARTTLS replies 220 and upgrades the connection in place
// (tlsContext.upgrade). Over TLS it echoes every byte back; QUIT (in clear or over TLS) ends
// the session. This is the shape of SMTP, IMAP, POP3, XMPP, LDAP and Postgres servers, which
// all begin in clear and switch to TLS on the same connection.
//
//   node examples/starttls.mjs [--port 2525] [--host 127.0.0.1] [--key file] [--cert file]
//   npm run starttls
//
// Try it: `openssl s_client -starttls smtp -connect 127.0.0.1:2525 -CAfile test/fixtures/tls/ca.pem`
// (the default key and certificate are the test fixtures, valid for `localhost`).
//
// What the upgrade takes care of: the 220 written before upgrade() leaves in clear ahead of the
// first TLS byte; a client that sends its ClientHello without waiting for the 220 loses
// nothing (the loop hands bytes JavaScript had not seen to the TLS session); and bytes that came
// in the same chunk as the STARTTLS line are handed over as `head`.
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const { Loop, SocketContext } = createRequire(import.meta.url)('../index.js')

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'test', 'fixtures', 'tls')
const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '2525' },
    host: { type: 'string', default: '127.0.0.1' },
    key: { type: 'string', default: path.join(fixtures, 'server.key') },
    cert: { type: 'string', default: path.join(fixtures, 'server.pem') },
  },
})

/** An SMTP command line is at most 512 bytes (RFC 5321 §4.5.3.1.4); longer input is refused. */
const MAX_LINE_BYTES = 512

const loop = Loop.default()
const plain = new SocketContext(loop)
const secure = new SocketContext(loop, { tls: { key: fs.readFileSync(values.key), cert: fs.readFileSync(values.cert) } })

plain.onOpen((socket) => {
  socket.ext = { pending: Buffer.alloc(0) }
  socket.send('220 usockets-rs ESMTP ready\r\n')
})

plain.onData((socket, data) => {
  let input = Buffer.concat([socket.ext.pending, data])
  for (let end = input.indexOf('\n'); end !== -1; end = input.indexOf('\n')) {
    const line = input.subarray(0, end).toString('latin1').replace(/\r$/, '')
    input = input.subarray(end + 1)
    const verb = line.split(' ', 1)[0].toUpperCase()
    if (verb === 'EHLO') {
      socket.send('250-usockets-rs greets you\r\n250 STARTTLS\r\n')
    } else if (verb === 'STARTTLS') {
      socket.send('220 Ready to start TLS\r\n')
      // What followed the command in this chunk is the client's first TLS bytes.
      secure.upgrade(socket, { head: input })
      return
    } else if (verb === 'QUIT') {
      socket.send('221 Bye\r\n')
      socket.shutdown()
      return
    } else {
      socket.send('530 Must issue a STARTTLS command first\r\n')
    }
  }
  if (input.length > MAX_LINE_BYTES) {
    socket.send('500 Line too long\r\n')
    socket.close()
    return
  }
  socket.ext.pending = Buffer.from(input)
})

plain.onEnd((socket) => socket.close())

secure.onOpen((socket, isClient, remoteAddress) => {
  console.log(`${remoteAddress}: TLS open (${socket.tlsVersion}, ${socket.cipher?.name}${socket.isSessionReused ? ', resumed' : ''})`)
})
secure.onData((socket, data) => {
  if (/^QUIT\r?\n/i.test(data.toString('latin1'))) {
    socket.send('221 Bye\r\n')
    socket.shutdown()
    return
  }
  socket.send(data)
})
secure.onEnd((socket) => socket.close())
secure.onClose((socket, code, err) => {
  if (code !== 0) console.log(`${socket.remoteAddress}: closed, ${err?.code ?? code}`)
})

const listener = plain.listen(values.host, Number(values.port))
console.log(`listening on ${values.host}:${listener.port}`)

process.once('SIGTERM', () => loop.close())
process.once('SIGINT', () => loop.close())
