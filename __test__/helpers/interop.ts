// Helpers for the TLS interop and stress specs (not a spec itself): a usockets-rs TLS echo server
// and a usockets-rs TLS client, each on a fresh Loop closed when the test ends, recording what
// happened so that a spec can compare it with what the other peer (openssl, node:tls) saw.
import { X509Certificate } from 'node:crypto'

import type { ListenSocket, Loop, Socket, SocketContext, SocketError, TlsOptions } from '../..'

import { Tracker, newContext, until } from './net'
import { fixture } from './tls'
import type { Teardown } from './util'

/** The DER bytes of the (first) certificate of a PEM fixture: what `socket.peerCertificate` holds. */
export function derOf(name: string): Buffer {
  return Buffer.from(new X509Certificate(fixture(name)).raw)
}

/** The subject CN of a DER certificate (for messages). */
export function subjectOf(der: Buffer | undefined): string {
  if (der === undefined) return 'no certificate'
  try {
    return new X509Certificate(der).subject.replace(/\n/g, ', ')
  } catch {
    return `${der.length} bytes that are not a certificate`
  }
}

/** The `{ key, cert }` of a fixture pair, e.g. `keyCert('server')` (server.key, server.pem). */
export function keyCert(name: string): { key: Buffer; cert: Buffer } {
  return { key: fixture(`${name}.key`), cert: fixture(`${name}.pem`) }
}

export interface OpenedServerSocket {
  socket: Socket
  alpnProtocol: string | undefined
  servername: string | undefined
  peerCertificate: Buffer | undefined
}

export interface OurTlsServer {
  loop: Loop
  ctx: SocketContext
  listener: ListenSocket
  port: number
  /** Every event of the server context. */
  tracker: Tracker
  /** The TLS details of every accepted socket, as read in its onOpen. */
  opened: OpenedServerSocket[]
  /** Every byte received, all sockets together, in arrival order. */
  receivedBytes(): number
}

/**
 * A usockets-rs TLS server on 127.0.0.1 (an ephemeral port) that echoes every byte with `send()`
 * (which takes everything; the amounts here are small, so it does not wait for onWritable after
 * a false), and shuts its side down when the client ends. `sni` adds server names before it
 * listens.
 */
export function ourTlsEchoServer(t: Teardown, tls: TlsOptions, sni: Array<[string, TlsOptions]> = []): OurTlsServer {
  const { loop, ctx } = newContext(t, { tls })
  for (const [pattern, options] of sni) ctx.addServerName(pattern, options)
  const opened: OpenedServerSocket[] = []
  let received = 0
  const tracker = new Tracker(ctx, {
    open(socket) {
      opened.push({
        socket,
        alpnProtocol: socket.alpnProtocol,
        servername: socket.servername,
        peerCertificate: socket.peerCertificate,
      })
    },
    data(socket, data: Buffer) {
      received += data.length
      socket.send(data)
    },
    end(socket) {
      socket.shutdown()
    },
  })
  const listener = ctx.listen('127.0.0.1', 0)
  return { loop, ctx, listener, port: listener.port, tracker, opened, receivedBytes: () => received }
}

export interface OurTlsClientResult {
  /** Set once connect() returned. */
  socket: Socket | undefined
  /** onOpen ran (the handshake completed, as the client saw it). */
  opened: boolean
  /** The socket's TLS details as read in onOpen. */
  alpnProtocol: string | undefined
  servername: string | undefined
  peerCertificate: Buffer | undefined
  received: Buffer
  /** onConnectError's `code` and `error`, if the connect failed. */
  connectError?: { code: number; error: SocketError }
  /** onClose's `code` and `reason`, if the socket closed before it had everything. */
  close?: { code: number; reason: any }
  /** Got `expectBytes` (then the client closed the socket itself). */
  complete: boolean
}

/**
 * A usockets-rs TLS client (`tls` options) to `host`:`port`: sends `payload` (one `send()`) once open and
 * resolves once `expectBytes` came back (then closes), or when the connect failed or the socket
 * closed before. Rejects after `ms`.
 */
export async function ourTlsClient(
  t: Teardown,
  tls: TlsOptions,
  host: string,
  port: number,
  payload: Buffer,
  expectBytes = payload.length,
  ms = 8000,
): Promise<OurTlsClientResult> {
  const { ctx } = newContext(t, { tls })
  const chunks: Buffer[] = []
  let receivedLength = 0
  let done = false
  const result: OurTlsClientResult = {
    socket: undefined,
    opened: false,
    alpnProtocol: undefined,
    servername: undefined,
    peerCertificate: undefined,
    received: Buffer.alloc(0),
    complete: false,
  }
  const finish = () => {
    done = true
    result.received = Buffer.concat(chunks)
  }
  ctx
    .onOpen((socket: Socket) => {
      result.opened = true
      result.alpnProtocol = socket.alpnProtocol
      result.servername = socket.servername
      result.peerCertificate = socket.peerCertificate
      // send() takes all of it (what the kernel does not take yet is buffered natively); the
      // onWritable protocol after a false is exercised by test/tls-stress.js, not here.
      if (payload.length > 0) socket.send(payload)
      if (expectBytes === 0) {
        result.complete = true
        finish()
        socket.close()
      }
    })
    .onData((socket: Socket, data: Buffer) => {
      chunks.push(data)
      receivedLength += data.length
      if (!done && receivedLength >= expectBytes) {
        result.complete = true
        finish()
        socket.close()
      }
    })
    .onConnectError((_socket: Socket, code: number, error: SocketError) => {
      result.connectError = { code, error }
      finish()
    })
    .onClose((_socket: Socket, code: number, reason: any) => {
      if (done) return
      result.close = { code, reason }
      finish()
    })
  result.socket = ctx.connect(host, port)
  await until(() => done, `the usockets-rs TLS client to ${host}:${port} (${receivedLength} of ${expectBytes} bytes)`, ms)
  return result
}

/** A short description of how a client run ended (for assertion messages). */
export function describeOutcome(result: OurTlsClientResult): string {
  const parts = [`opened ${result.opened}`, `received ${result.received.length} bytes`]
  if (result.connectError !== undefined) {
    parts.push(`connect error ${result.connectError.code} ${result.connectError.error?.code}: ${result.connectError.error?.message}`)
  }
  if (result.close !== undefined) parts.push(`closed ${result.close.code} ${result.close.reason?.code ?? ''} ${result.close.reason?.message ?? ''}`)
  return parts.join(', ')
}
