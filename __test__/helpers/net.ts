// Networking helpers for the socket specs (not a spec itself). Peers are node:net sockets on
// loopback addresses and Unix socket paths in os.tmpdir(); every helper registers its own cleanup
// with `t.teardown` so that a failing test still closes what it opened.
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

import { type ListenSocket, type Loop, type Socket, SocketContext, type SocketContextOptions, type SocketError } from '../..'

import { type FixtureResult, type Teardown, newLoop, runNodeProcess, sleep } from './util'

/** The package root (what `require('..')` in a spec loads). */
export const ROOT = path.join(__dirname, '..', '..')

/** A fresh SocketContext on a fresh Loop; both closed when the test ends. */
export function newContext(t: Teardown, options?: SocketContextOptions): { loop: Loop; ctx: SocketContext } {
  const loop = newLoop(t)
  const ctx = new SocketContext(loop, options)
  t.teardown(() => ctx.close())
  return { loop, ctx }
}

export interface Deferred<T> {
  promise: Promise<T>
  resolve(value: T): void
  reject(err: unknown): void
  settled: boolean
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (err: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  const d: Deferred<T> = {
    promise,
    settled: false,
    resolve(value) {
      d.settled = true
      resolve(value)
    },
    reject(err) {
      d.settled = true
      reject(err)
    },
  }
  return d
}

/** Resolves with `promise`'s value, or rejects with a message naming `what` after `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Waits until `cond()` holds; rejects naming `what` after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = performance.now() + ms
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(2)
  }
}

/** A node:net server whose accepted sockets are handed out in order by `next()`. */
export interface NodeServer {
  server: net.Server
  port: number
  /** Every connection accepted so far. */
  connections: net.Socket[]
  /** The next accepted connection (one not handed out by `next()` before). */
  next(ms?: number): Promise<net.Socket>
  /** Closes the server and destroys its connections. */
  close(): Promise<void>
}

export async function nodeServer(
  t: Teardown,
  host: string = '127.0.0.1',
  onConnection?: (socket: net.Socket) => void,
  options: net.ListenOptions = {},
  serverOptions: net.ServerOpts = {},
): Promise<NodeServer> {
  const connections: net.Socket[] = []
  const waiting: Array<(socket: net.Socket) => void> = []
  let handedOut = 0
  const server = net.createServer(serverOptions, (socket) => {
    socket.on('error', () => {})
    connections.push(socket)
    onConnection?.(socket)
    const waiter = waiting.shift()
    if (waiter !== undefined) {
      handedOut++
      waiter(socket)
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ port: 0, host, ...options }, () => resolve())
  })
  let closed = false
  const result: NodeServer = {
    server,
    port: (server.address() as net.AddressInfo).port,
    connections,
    next(ms = 5000) {
      if (handedOut < connections.length) return Promise.resolve(connections[handedOut++])
      return withTimeout(new Promise<net.Socket>((resolve) => waiting.push(resolve)), ms, 'a connection to the node:net server')
    },
    close() {
      if (closed) return Promise.resolve()
      closed = true
      for (const socket of connections) socket.destroy()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
  t.teardown(() => result.close())
  return result
}

/** A node:net client connected to `port` (or a Unix path), destroyed when the test ends. */
export function nodeConnect(t: Teardown, port: number | string, host: string = '127.0.0.1'): Promise<net.Socket> {
  const socket = typeof port === 'string' ? net.connect(port) : net.connect(port, host)
  t.teardown(() => {
    socket.destroy()
  })
  return withTimeout(
    new Promise<net.Socket>((resolve, reject) => {
      socket.once('error', reject)
      socket.once('connect', () => {
        socket.off('error', reject)
        socket.on('error', () => {})
        resolve(socket)
      })
    }),
    5000,
    `a node:net connect to ${host}:${port}`,
  )
}

/** Everything `socket` receives until its end (or close). Starts reading at once. */
export function readAll(socket: net.Socket, ms = 20_000): Promise<Buffer> {
  const chunks: Buffer[] = []
  return withTimeout(
    new Promise<Buffer>((resolve) => {
      socket.on('data', (chunk: Buffer) => chunks.push(chunk))
      let done = false
      const finish = () => {
        if (done) return
        done = true
        resolve(Buffer.concat(chunks))
      }
      socket.once('end', finish)
      socket.once('close', finish)
    }),
    ms,
    'the node:net peer to receive everything',
  )
}

/** Collects what `socket` receives, without waiting for the end. */
export function collect(socket: net.Socket): { chunks: Buffer[]; bytes(): Buffer; length(): number } {
  const chunks: Buffer[] = []
  let length = 0
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk)
    length += chunk.length
  })
  return { chunks, bytes: () => Buffer.concat(chunks), length: () => length }
}

/** Resolves when `emitter` emits `event` (with its first argument). */
export function once<T = unknown>(emitter: NodeJS.EventEmitter, event: string, ms = 5000): Promise<T> {
  return withTimeout(
    new Promise<T>((resolve) => emitter.once(event, (value: T) => resolve(value))),
    ms,
    `'${event}'`,
  )
}

/** `ctx` listens on 127.0.0.1 (an ephemeral port); a node:net client connects to that listener. */
export async function listenAndConnect(t: Teardown, ctx: SocketContext): Promise<{ listener: ListenSocket; client: net.Socket }> {
  const listener = ctx.listen('127.0.0.1', 0)
  const client = await nodeConnect(t, listener.port)
  return { listener, client }
}

/** A node:net server on 127.0.0.1 whose connections are paused (they read nothing until resumed). */
export function pausedNodeServer(t: Teardown): Promise<NodeServer> {
  return nodeServer(t, '127.0.0.1', (peer) => peer.pause())
}

/** The four addresses of `socket` (still readable in its onClose). */
export function addressesOf(socket: Socket): { remoteAddress: string; remotePort: number; localAddress: string; localPort: number } {
  return {
    remoteAddress: socket.remoteAddress,
    remotePort: socket.remotePort,
    localAddress: socket.localAddress,
    localPort: socket.localPort,
  }
}

/** A TCP port on 127.0.0.1 that nothing listens on (bound once, then freed). */
export async function closedPort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()))
  const port = (server.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

let pathCounter = 0

/** A fresh Unix socket path in os.tmpdir(), removed when the test ends. */
export function tmpSocketPath(t: Teardown, name = 'sock'): string {
  const socketPath = path.join(os.tmpdir(), `us-${process.pid}-${Date.now() % 100000}-${pathCounter++}-${name}.sock`)
  t.teardown(() => fs.rmSync(socketPath, { force: true }))
  return socketPath
}

export function sha256(data: Buffer | Buffer[]): string {
  const hash = crypto.createHash('sha256')
  for (const chunk of Array.isArray(data) ? data : [data]) hash.update(chunk)
  return hash.digest('hex')
}

/** `size` pseudo-random bytes (a fixed seed per call order is not needed: content is compared). */
export function randomBytes(size: number): Buffer {
  return crypto.randomBytes(size)
}

/**
 * Runs `code` in a fresh Node process (CommonJS, no tsx) whose `usockets` variable is the package.
 * Resolves with its exit status, output and lifetime.
 */
export function runNode(code: string, timeoutMs = 10_000, args: string[] = []): Promise<FixtureResult> {
  const script = `'use strict'\nconst usockets = require(${JSON.stringify(ROOT)});\n${code}`
  return runNodeProcess(['-e', script, '--', ...args], { timeoutMs })
}

/**
 * A listening TCP port on 127.0.0.1 whose accept queue is full (a child process listens with a
 * backlog of 1 and never accepts; node:net clients fill the queue), so a further connect stays in
 * SYN_SENT: the kernel drops its SYNs. Everything is torn down when the test ends.
 */
export async function blackholePort(t: Teardown, holdMs = 15_000): Promise<number> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const s = require('net').createServer()
       s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
         process.stdout.write(String(s.address().port) + '\\n')
         // Block the thread without using a core: nothing is ever accepted.
         Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${holdMs})
         process.exit(0)
       })`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_OPTIONS: '' } },
  )
  t.teardown(() => {
    child.kill('SIGKILL')
  })
  const port = await withTimeout(
    new Promise<number>((resolve) => {
      let text = ''
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        text += chunk
        if (text.includes('\n')) resolve(Number(text.trim()))
      })
    }),
    5000,
    'the blackhole listener',
  )
  // Fill the accept queue (backlog + 1 connections); later SYNs are dropped.
  const fillers: net.Socket[] = []
  t.teardown(() => {
    for (const filler of fillers) filler.destroy()
  })
  let connected = 0
  for (let i = 0; i < 4; i++) {
    const filler = net.connect(port, '127.0.0.1')
    filler.on('error', () => {})
    filler.on('connect', () => connected++)
    fillers.push(filler)
  }
  await until(() => connected >= 2, 'the blackhole accept queue to fill')
  await sleep(100)
  return port
}

/** The arguments after the socket of each handler (index.d.ts, SocketContext). */
export interface EventArgs {
  open: [isClient: boolean, remoteAddress: string]
  data: [data: Buffer]
  writable: []
  end: []
  timeout: []
  longTimeout: []
  close: [code: number, reason: CloseReason]
  connectError: [code: number, error: SocketError]
}

type EventName = keyof EventArgs

/** What onClose gets as its reason: whatever close(code, reason) was given (index.d.ts). */
type CloseReason = Parameters<Parameters<SocketContext['onClose']>[0]>[2]

/** One handler call, as the Tracker recorded it. */
export type TrackedEvent<E extends EventName = EventName> = {
  [K in E]: { event: K; socket: Socket; args: EventArgs[K]; at: number }
}[E]

/** The assertions `Tracker.assertLifecycle` makes (a subset of ava's `t`). */
export type LifecycleAsserts = { is: Function; true: Function; deepEqual: Function }

export type Hooks = { [E in EventName]?: (socket: Socket, ...args: EventArgs[E]) => void }

/**
 * Installs every handler of `ctx` and records each call. `hooks` run after the record (a hook for
 * 'end' installs an onEnd handler; without one the context keeps its default: close on end).
 */
export class Tracker {
  log: TrackedEvent[] = []

  constructor(
    /** The context whose handlers record (`connectTo` connects with it). */
    readonly ctx: SocketContext,
    hooks: Hooks = {},
  ) {
    const record =
      <E extends EventName>(event: E) =>
      (socket: Socket, ...args: EventArgs[E]) => {
        // TypeScript cannot pair `event` with `args` through E by itself.
        this.log.push({ event, socket, args, at: performance.now() } as TrackedEvent)
        const hook = hooks[event] as ((socket: Socket, ...args: EventArgs[E]) => void) | undefined
        hook?.(socket, ...args)
      }
    ctx
      .onOpen(record('open'))
      .onData(record('data'))
      .onWritable(record('writable'))
      .onTimeout(record('timeout'))
      .onLongTimeout(record('longTimeout'))
      .onClose(record('close'))
      .onConnectError(record('connectError'))
    if (hooks.end !== undefined) ctx.onEnd(record('end'))
  }

  /** The event names recorded for `socket`, in order. */
  events(socket: Socket): string[] {
    return this.log.filter((e) => e.socket === socket).map((e) => e.event)
  }

  count(event: EventName, socket?: Socket): number {
    return this.log.filter((e) => e.event === event && (socket === undefined || e.socket === socket)).length
  }

  first<E extends EventName>(event: E, socket?: Socket): TrackedEvent<E> | undefined {
    return this.log.find((e) => e.event === event && (socket === undefined || e.socket === socket)) as TrackedEvent<E> | undefined
  }

  /** The `n`th (0-based) `event` (of `socket` if given), once it happened. */
  async wait<E extends EventName>(event: E, socket?: Socket, ms = 5000, n = 0): Promise<TrackedEvent<E>> {
    const matching = () => this.log.filter((e) => e.event === event && (socket === undefined || e.socket === socket)) as Array<TrackedEvent<E>>
    await until(() => matching().length > n, `${event} #${n + 1}`, ms)
    return matching()[n]
  }

  /**
   * Connects the tracked context to `server` (on 127.0.0.1); resolves once an onOpen ran, with our
   * socket and the server's end of it.
   */
  async connectTo(server: NodeServer): Promise<{ socket: Socket; peer: net.Socket }> {
    const socket = this.ctx.connect('127.0.0.1', server.port)
    const peer = await server.next()
    await this.wait('open')
    return { socket, peer }
  }

  /** Ends the node:net side `peer`; once an onClose ran (resolves with it), checks the lifecycle. */
  async closeFromPeer(t: LifecycleAsserts, peer: net.Socket): Promise<TrackedEvent<'close'>> {
    peer.end()
    const close = await this.wait('close')
    this.assertLifecycle(t)
    return close
  }

  /** The bytes `socket` received so far, in order. */
  received(socket: Socket): Buffer {
    return Buffer.concat(this.log.filter((e): e is TrackedEvent<'data'> => e.event === 'data' && e.socket === socket).map((e) => e.args[0]))
  }

  /** The sockets seen, in the order of their first event. */
  sockets(): Socket[] {
    return [...new Set(this.log.map((e) => e.socket))]
  }

  /**
   * API.md's order per socket: onOpen first and once, onClose last and once, nothing after it;
   * a failed connect has its onConnectError alone; onData never gets an empty Buffer.
   */
  assertLifecycle(t: LifecycleAsserts, sockets = this.sockets()): void {
    for (const socket of sockets) {
      const events = this.events(socket)
      if (events.includes('connectError')) {
        t.deepEqual(events, ['connectError'], 'a failed connect gets its onConnectError and nothing else')
        continue
      }
      const opens = events.filter((e) => e === 'open').length
      const closes = events.filter((e) => e === 'close').length
      // A socket adopted from another context has no onOpen in this one.
      if (opens > 0) t.is(events[0], 'open', `first event: ${events.join(',')}`)
      t.true(opens <= 1, `onOpen ran ${opens} times: ${events.join(',')}`)
      t.true(closes <= 1, `onClose ran ${closes} times: ${events.join(',')}`)
      if (closes === 1) t.is(events[events.length - 1], 'close', `events after onClose: ${events.join(',')}`)
    }
    for (const e of this.log) {
      if (e.event !== 'data') continue
      t.true(Buffer.isBuffer(e.args[0]) && e.args[0].length > 0, 'onData got an empty or non-Buffer chunk')
    }
  }
}
