// The program .ci/run runs in projects that installed the packed package: a TCP echo and a TLS
// echo between a usockets-rs listener and a usockets-rs client on 127.0.0.1, the TLS client
// verifying the server's certificate against the test CA of test/fixtures/tls. It takes the
// package's exports as an argument, so that one program serves the ESM and the CommonJS entry:
//   node -e "require('<repo>/scripts/smoke.js')(require('usockets-rs'), 'CommonJS')"
'use strict'
const path = require('node:path')

const fixtures = path.join(__dirname, '..', 'test', 'fixtures', 'tls')

// Resolves once `message`, sent by a client, came back from an echoing server.
function echo({ Loop, SocketContext }, serverOptions, clientOptions, message) {
  return new Promise((resolve, reject) => {
    const server = new SocketContext(Loop.default(), serverOptions).onData((socket, data) => socket.send(data))
    const listener = server.listen('127.0.0.1', 0)
    let received = ''
    const client = new SocketContext(Loop.default(), clientOptions)
      .onOpen((socket) => socket.send(message))
      .onData((socket, data) => {
        received += data
        if (received.length < message.length) return
        client.close()
        server.close()
        if (received === message) resolve()
        else reject(new Error(`sent '${message}', got back '${received}'`))
      })
      .onConnectError((socket, code, error) => reject(error))
    client.connect('127.0.0.1', listener.port)
  })
}

module.exports = async function smoke(usockets, entry) {
  const timeout = setTimeout(() => {
    console.error(`${entry}: no echo within 10 s`)
    process.exit(1)
  }, 10_000)
  await echo(usockets, undefined, undefined, 'tcp echo')
  await echo(
    usockets,
    { tls: { keyFileName: path.join(fixtures, 'server.key'), certFileName: path.join(fixtures, 'server.pem') } },
    { tls: { caFileName: path.join(fixtures, 'ca.pem') } },
    'tls echo',
  )
  clearTimeout(timeout)
  // Which binary ran: the prebuilt package's or one built from source.
  const addon = process.report.getReport().sharedObjects.find((file) => file.endsWith('.node'))
  console.log(`${entry}: TCP echo and TLS echo ok, addon ${path.relative(process.cwd(), addon)}`)
}
