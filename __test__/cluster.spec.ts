// examples/cluster.mjs: one loop per worker thread on one port (SO_REUSEPORT). Run as a user
// runs it, in a process of its own; node:net clients.
import { type ChildProcess, spawn } from 'node:child_process'
import net from 'node:net'
import path from 'node:path'
import readline from 'node:readline'

import test, { type ExecutionContext } from 'ava'

import { ROOT, closedPort, nodeConnect, once, until } from './helpers/net'

const EXAMPLE = path.join(ROOT, 'examples', 'cluster.mjs')
const WORKERS = 4
const CONNECTIONS = 48

type Line = { event: string; worker?: number; port?: number }

async function startCluster(t: ExecutionContext): Promise<{ child: ChildProcess; lines: Line[]; port: number }> {
  const port = await closedPort()
  const args = [EXAMPLE, '--host', '127.0.0.1', '--port', String(port), '--workers', String(WORKERS), '--grace-ms', '1000']
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => child.kill('SIGKILL'))
  const lines: Line[] = []
  readline.createInterface({ input: child.stdout! }).on('line', (line) => lines.push(JSON.parse(line)))
  child.stderr!.resume()
  await until(() => lines.filter((line) => line.event === 'listening').length === WORKERS, 'every worker listening', 10_000)
  return { child, lines, port }
}

/** A client and the worker that greeted it. */
async function connectToWorker(t: ExecutionContext, port: number): Promise<{ client: net.Socket; worker: number }> {
  const client = await nodeConnect(t, port)
  const greeting = await new Promise<string>((resolve, reject) => {
    let text = ''
    client.on('data', function onData(chunk) {
      text += chunk
      if (!text.includes('\n')) return
      client.off('data', onData)
      resolve(text)
    })
    client.once('error', reject)
  })
  const match = /^worker (\d+)\n$/.exec(greeting)
  if (match === null) throw new Error(`unexpected greeting ${JSON.stringify(greeting)}`)
  return { client, worker: Number(match[1]) }
}

async function echo(client: net.Socket, text: string): Promise<string> {
  const reply = once<Buffer>(client, 'data')
  client.write(text)
  return (await reply).toString()
}

test('4 workers on one port all get connections; a crashed worker\'s connections close while the others keep serving, and it is replaced', async (t) => {
  const { lines, port } = await startCluster(t)
  const clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => connectToWorker(t, port)))
  const perWorker = Array.from({ length: WORKERS }, (_, worker) => clients.filter((client) => client.worker === worker))
  // SO_REUSEPORT hashes connections over the listeners: each of 4 should see about 12 of 48.
  t.true(perWorker.every((group) => group.length >= 2), `connections per worker: ${perWorker.map((group) => group.length)}`)

  const [victim, ...survivors] = perWorker
  const closed = victim.map(({ client }) => once(client, 'close', 10_000))
  victim[0].client.write('crash\n')
  await Promise.all(closed)
  for (const group of survivors) {
    for (const { client } of group) t.is(await echo(client, 'still here'), 'still here')
  }
  await until(() => lines.some((line) => line.event === 'replaced' && line.worker === 0), 'worker 0 replaced', 10_000)
  await until(() => lines.filter((line) => line.event === 'listening' && line.worker === 0).length === 2, 'the new worker 0 listening', 10_000)
  // The replacement takes connections again.
  let reached = false
  for (let attempt = 0; attempt < 64 && !reached; attempt++) {
    const { client, worker } = await connectToWorker(t, port)
    reached = worker === 0
    client.destroy()
  }
  t.true(reached, 'no connection reached the replaced worker')
})

test('SIGTERM: listeners close at once, open connections are ended (FIN) and the process exits after they finish', async (t) => {
  const { child, lines, port } = await startCluster(t)
  const clients = await Promise.all(Array.from({ length: 8 }, () => connectToWorker(t, port)))
  const ended = clients.map(({ client }) => once(client, 'end', 5000))
  const exited = once<number>(child, 'exit', 10_000)
  child.kill('SIGTERM')
  await Promise.all(ended)
  // Every worker closed its listener (a worker none of the 8 reached may say so after the others'
  // FINs arrived): refused from now on, no listener is left.
  await until(() => lines.filter((line) => line.event === 'draining').length === WORKERS, 'every worker to close its listener', 5000)
  const refused = await new Promise<string>((resolve) => {
    const probe = net.connect(port, '127.0.0.1')
    probe.once('connect', () => resolve('connected'))
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'))
  })
  t.is(refused, 'ECONNREFUSED')
  for (const { client } of clients) client.end()
  t.is(await exited, 0)
  t.true(lines.some((line) => line.event === 'stopped'))
})
