// Hosts and paths as listen / connect / listenUnix / connectUnix take them: bracketed IPv6
// literals mean the same everywhere, and a NUL character (which no host name, address or path
// has, and which the C calls below us would cut the string at) is refused before any lookup.
import net from 'node:net'

import test, { type ExecutionContext } from 'ava'

import { newContext, nodeConnect, once, tmpSocketPath } from './helpers/net'

function invalidValue(t: ExecutionContext, fn: () => unknown, name: string): void {
  const err = t.throws<TypeError & { code?: string }>(fn, { instanceOf: TypeError }, `expected a TypeError naming '${name}'`)
  t.is(err?.code, 'ERR_INVALID_ARG_VALUE', `code for '${name}'`)
  t.true((err?.message ?? '').includes(`'${name}'`), `message does not name '${name}': ${err?.message}`)
}

test('listen takes an IPv6 literal with or without brackets, as connect does', async (t) => {
  const { ctx } = newContext(t)
  ctx.onData((socket, data) => socket.send(data))
  for (const host of ['[::1]', '::1']) {
    const listener = ctx.listen(host, 0)
    t.is(listener.host, host)
    const peer = await nodeConnect(t, listener.port, '::1')
    peer.write('ping')
    t.is(String(await once(peer, 'data')), 'ping', `an echo through ${host}`)
    listener.close()
  }
})

test('a host with a NUL is a TypeError ERR_INVALID_ARG_VALUE in listen and connect, not a failed lookup', (t) => {
  const { ctx } = newContext(t)
  invalidValue(t, () => ctx.listen('127.0.0.1\0', 0), 'host')
  invalidValue(t, () => ctx.listen('local\0host', 0), 'host')
  invalidValue(t, () => ctx.connect('127.0.0.1\0', 1), 'host')
  invalidValue(t, () => ctx.connect('a\0b', 80), 'host')
  invalidValue(t, () => ctx.connect('127.0.0.1', 80, { sourceHost: '127.0.0.1\0' }), 'options.sourceHost')
})

test('a Unix path with a NUL is a TypeError ERR_INVALID_ARG_VALUE, and nothing is created at the cut-off path', (t) => {
  const { ctx } = newContext(t)
  const path = tmpSocketPath(t)
  invalidValue(t, () => ctx.listenUnix(`${path}\0tail`), 'path')
  invalidValue(t, () => ctx.connectUnix(`${path}\0tail`), 'path')
  invalidValue(t, () => ctx.listenUnix(`\0abstract`), 'path')
  // Nothing listens at the path before the NUL.
  const probe = net.connect(path)
  return new Promise<void>((resolve) => {
    probe.on('error', (err: NodeJS.ErrnoException) => {
      t.is(err.code, 'ENOENT')
      resolve()
    })
    probe.on('connect', () => {
      t.fail('something listens at the cut-off path')
      probe.destroy()
      resolve()
    })
  })
})
