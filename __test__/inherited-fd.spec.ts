// Inherited descriptors (SocketContext.listenFd / adoptFd): started as systemd starts services,
// by systemd-socket-activate (systemd's own tool: it listens, then runs the server with the
// socket as fd 3 and LISTEN_FDS=1; with --accept, one server per connection, given that
// connection). Bad descriptors are refused with a code and left open.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import tls from 'node:tls'

import test, { type ExecutionContext } from 'ava'

import { LISTEN_EXCLUSIVE_PORT } from '..'

import { ROOT, closedPort, newContext, nodeConnect, once, readAll, until } from './helpers/net'
import { fixture } from './helpers/tls'

const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'inherited-fd.js')
const ACTIVATE = 'systemd-socket-activate'

type Line = { event: string; [key: string]: unknown }

/** systemd-socket-activate on a free port, running the fixture in `mode`; its JSON lines. */
async function activate(t: ExecutionContext, args: string[]): Promise<{ port: number; lines: Line[]; child: ChildProcess }> {
  t.is(spawnSync(ACTIVATE, ['--help']).status, 0, `${ACTIVATE} (systemd) is needed: .ci/run installs it`)
  const port = await closedPort()
  const child = spawn(ACTIVATE, [...args.slice(0, -2), '-l', `127.0.0.1:${port}`, process.execPath, FIXTURE, ...args.slice(-2)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => child.kill())
  const lines: Line[] = []
  readline.createInterface({ input: child.stdout! }).on('line', (line) => lines.push(JSON.parse(line)))
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk) => (stderr += chunk))
  // It says so once it listens (and runs the server at the first connection).
  const deadline = Date.now() + 5000
  while (!/Listening on/.test(stderr)) {
    if (Date.now() > deadline) throw new Error(`${ACTIVATE} did not listen: ${stderr}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return { port, lines, child }
}

async function echoOverNet(t: ExecutionContext, port: number, payload: string): Promise<string> {
  const client = await nodeConnect(t, port)
  client.end(payload)
  return (await readAll(client)).toString()
}

test('listenFd(3) under systemd socket activation: the inherited listener accepts and echoes, and closes with its listen socket', async (t) => {
  const { port, lines, child } = await activate(t, ['listen', ''])
  t.is(await echoOverNet(t, port, 'hello over an inherited listener'), 'hello over an inherited listener')
  // 'close', not 'exit': by then every line it printed has been read.
  const code = await once<number>(child, 'close', 10_000)
  t.is(code, 0)
  const events = lines.map((line) => line.event)
  t.deepEqual(events, ['listening', 'open', 'close'], JSON.stringify(lines))
  t.like(lines[0], { host: '127.0.0.1', port })
  t.like(lines[1], { isClient: false, remoteAddress: '127.0.0.1', fds: '1' })
})

test('adoptFd(3) under systemd-socket-activate --accept: each connection is adopted, onOpen(socket, false), echoed', async (t) => {
  const { port, lines } = await activate(t, ['--accept', 'adopt', ''])
  t.is(await echoOverNet(t, port, 'first'), 'first')
  t.is(await echoOverNet(t, port, 'second'), 'second')
  // Each server process prints its open as it happens; the pipe may deliver it after the echo.
  const opens = () => lines.filter((line) => line.event === 'open')
  await until(() => opens().length === 2, `both servers' opens (${JSON.stringify(lines)})`, 5000)
  for (const open of opens()) t.like(open, { isClient: false, remoteAddress: '127.0.0.1' })
})

test('adoptFd on a TLS context: the adopted connection handshakes as the server, a node:tls client verifies it', async (t) => {
  const { port } = await activate(t, ['--accept', 'adopt', '--tls'])
  const client = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: fixture('ca.pem') })
  t.teardown(() => client.destroy())
  await once(client, 'secureConnect', 10_000)
  t.true(client.authorized)
  client.end('over TLS')
  t.is((await readAll(client as unknown as net.Socket)).toString(), 'over TLS')
})

test('bad descriptors throw with a code and stay open and the caller\'s', async (t) => {
  const { ctx } = newContext(t)
  const file = fs.openSync(path.join(os.tmpdir(), `usockets-rs-fd-${process.pid}`), 'w')
  t.teardown(() => fs.closeSync(file))
  for (const call of [() => ctx.listenFd(file), () => ctx.adoptFd(file)]) t.throws(call, { code: 'ENOTSOCK' })
  t.notThrows(() => fs.fstatSync(file), 'still open')

  // A descriptor number nothing uses.
  t.throws(() => ctx.listenFd(65_000), { code: 'EBADF' })
  t.throws(() => ctx.adoptFd(65_000), { code: 'EBADF' })

  // Node's own sockets, borrowed by number: a listener is no connection, a connection no listener.
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const serverFd = (server as unknown as { _handle: { fd: number } })._handle.fd
  t.throws(() => ctx.adoptFd(serverFd), { code: 'EINVAL' })
  const client = await nodeConnect(t, (server.address() as net.AddressInfo).port)
  const clientFd = (client as unknown as { _handle: { fd: number } })._handle.fd
  t.throws(() => ctx.listenFd(clientFd), { code: 'EINVAL' })
  // Both still work for Node: nothing was taken over.
  const accepted = once<net.Socket>(server, 'connection')
  const second = await nodeConnect(t, (server.address() as net.AddressInfo).port)
  const peer = await accepted
  peer.end('still served')
  t.is((await readAll(second)).toString(), 'still served')
  client.write('x')

  const exclusive = { code: 'ERR_INVALID_ARG_VALUE', message: /do not apply/ }
  t.throws(() => ctx.listenFd(serverFd, LISTEN_EXCLUSIVE_PORT), exclusive)
  t.throws(() => ctx.listenFd(serverFd, { ipv6Only: true }), exclusive)
  t.throws(() => ctx.listenFd(-1), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => ctx.listenFd(1.5), { instanceOf: RangeError })
  t.throws(() => ctx.adoptFd('3' as unknown as number), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  ctx.loop.close()
  t.throws(() => ctx.listenFd(serverFd), { code: 'ERR_LOOP_CLOSED' })
})
