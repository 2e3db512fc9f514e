// TLS helpers for the specs (not a spec itself): the certificates of test/fixtures/tls (made by
// its make-certs.sh; its README.md says what each is for) and TLS peers that are not usockets-rs:
// node:tls, and the openssl command line as an independent implementation. Nothing here loads the
// addon, so these helpers can be checked on their own.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'

import { closedPort } from './net'

export const TLS_FIXTURES = path.join(__dirname, '..', '..', 'test', 'fixtures', 'tls')

/** The path of a TLS fixture, e.g. `fixturePath('server.pem')`. Throws when it is missing. */
export function fixturePath(name: string): string {
  const file = path.join(TLS_FIXTURES, name)
  if (!fs.existsSync(file)) throw new Error(`no TLS fixture ${name} in ${TLS_FIXTURES} (see make-certs.sh)`)
  return file
}

/** The content of a TLS fixture. */
export function fixture(name: string): Buffer {
  return fs.readFileSync(fixturePath(name))
}

/** A fixture name ('server.pem') or a path (anything with a '/') to a path. */
function resolveFile(file: string): string {
  return file.includes('/') ? file : fixturePath(file)
}

let opensslChecked: boolean | undefined

/**
 * Whether an `openssl` command with the s_client options the helpers use (OpenSSL 1.1.1 or 3.x)
 * is on the PATH. Specs skip their openssl interop tests without one.
 */
export function opensslAvailable(): boolean {
  if (opensslChecked === undefined) {
    // The help goes to stderr (and exits non-zero on some versions): only its text counts.
    const help = spawnSync('openssl', ['s_client', '-help'], { encoding: 'utf8', timeout: 5000 })
    opensslChecked = help.error === undefined && /-nocommands/.test(`${help.stdout}${help.stderr}`)
  }
  return opensslChecked
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}


/**
 * Whether process `pid` listens on 127.0.0.1:`port`. On Linux this looks up the listening socket in
 * /proc/net/tcp and among the process's descriptors: no connection is made (a probe would count
 * against s_server's `-naccept` and log a failed handshake) and another process's listener on the
 * port does not count. Elsewhere it falls back to a connect probe.
 */
async function listensOn(pid: number, port: number): Promise<boolean> {
  let table: string | undefined
  try {
    table = fs.readFileSync('/proc/net/tcp', 'utf8')
  } catch {
    table = undefined
  }
  if (table !== undefined) {
    const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`
    // Columns: sl, local_address, rem_address, st (0A = LISTEN), ..., inode (the 10th).
    const inodes = table
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter((cols) => cols[1] === local && cols[3] === '0A')
      .map((cols) => `socket:[${cols[9]}]`)
    if (inodes.length === 0) return false
    const fdDir = `/proc/${pid}/fd`
    try {
      return fs.readdirSync(fdDir).some((fd) => inodes.includes(fs.readlinkSync(path.join(fdDir, fd))))
    } catch {
      return false // it exited
    }
  }
  return new Promise((resolve) => {
    const probe = net.connect(port, '127.0.0.1')
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', () => resolve(false))
  })
}

export interface OpensslServer {
  port: number
  process: ChildProcess
  /** What s_server printed on stderr so far (a failed handshake shows there as `ERROR` + reason). */
  output(): string
  /** Every byte received from clients so far (all of it was echoed). */
  received(): Buffer
  /** Kills it (SIGTERM, then SIGKILL after 2 s); resolves once it exited. Idempotent. */
  stop(): Promise<void>
}

export interface OpensslServerOptions {
  /**
   * Fixture names ('server.pem') or paths. A cert file with several certificates is sent as a chain
   * (s_server alone would send only the first: the others are passed as `-cert_chain`).
   */
  cert: string
  key: string
  /** Default: a free port. */
  port?: number
  /**
   * More s_server options, e.g. client certificates:
   * `['-Verify', '1', '-verify_return_error', '-CAfile', fixturePath('client-ca.pem')]` (`-verify 1`
   * asks without requiring one; without `-verify_return_error` a certificate that does not verify
   * is accepted); `['-alpn', 'h2']`; `['-naccept', '1']`; SNI: `['-servername', 'other.test',
   * '-cert2', ..., '-key2', ...]`.
   */
  extraArgs?: string[]
}

/**
 * `openssl s_server` on 127.0.0.1 as a byte-exact echo server. s_server has no such mode (`-rev`
 * reverses lines), so it runs in its default mode, where what a client sends is written to stdout
 * and stdin is sent to the client; here its stdout is piped into its stdin. `-quiet` keeps its own
 * messages off stdout and turns off its stdin command letters. It serves one connection at a time
 * (the next waits in the backlog); bytes still in the loop when a client goes away would be sent
 * to the next client. Resolves once it listens (at most 5 s).
 */
export async function startOpensslServer(options: OpensslServerOptions): Promise<OpensslServer> {
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await closedPort())
    try {
      return await launchOpensslServer(options, port)
    } catch (err) {
      // A free port taken by someone else in the meantime ('Address already in use'): try another.
      const taken = /in use|bind/i.test((err as Error).message)
      if (options.port !== undefined || attempt >= 3 || !taken) throw err
    }
  }
}

let chainCounter = 0

async function launchOpensslServer(options: OpensslServerOptions, port: number): Promise<OpensslServer> {
  const cert = resolveFile(options.cert)
  const args = ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', cert, '-key', resolveFile(options.key), '-quiet']
  const pems = fs.readFileSync(cert, 'utf8').match(/-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----\n?/g) ?? []
  let chainFile: string | undefined
  if (pems.length > 1) {
    chainFile = path.join(os.tmpdir(), `usockets-test-chain-${process.pid}-${chainCounter++}.pem`)
    fs.writeFileSync(chainFile, pems.slice(1).join(''))
    args.push('-cert_chain', chainFile)
  }
  args.push(...(options.extraArgs ?? []))
  const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] })
  const received: Buffer[] = []
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => received.push(chunk))
  child.stdout.pipe(child.stdin)
  child.stdin.on('error', () => {}) // EPIPE once it exited
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  let exited = false
  let spawnError = ''
  const exit = new Promise<void>((resolve) => {
    child.once('error', (err) => {
      spawnError = `${err.message}\n`
      exited = true
      resolve()
    })
    child.once('exit', () => {
      exited = true
      resolve()
    })
  })

  const stop = async (): Promise<void> => {
    if (!exited) {
      child.kill('SIGTERM')
      const killer = setTimeout(() => child.kill('SIGKILL'), 2000)
      await exit
      clearTimeout(killer)
    }
    if (chainFile !== undefined) fs.rmSync(chainFile, { force: true })
  }

  const end = performance.now() + 5000
  while (!(await listensOn(child.pid ?? -1, port))) {
    if (exited || performance.now() > end) {
      await stop()
      const why = exited ? `exited (${child.exitCode ?? child.signalCode})` : 'did not listen within 5 s'
      throw new Error(`openssl s_server ${why}: openssl ${args.join(' ')}\n${spawnError}${stderr}`)
    }
    await sleep(10)
  }
  return { port, process: child, output: () => stderr, received: () => Buffer.concat(received), stop }
}

export interface OpensslClientOptions {
  port: number
  /** The SNI name to send (`-servername`); without it none is sent (the host is an IP address). */
  servername?: string
  /**
   * A fixture name or path of the roots to trust. Then a chain that does not verify fails the
   * handshake (`-verify_return_error`, exit code 1); without `caFile` verification is reported on
   * stderr but not enforced. Host names are only checked with `-verify_hostname`/`-verify_ip` in
   * `extraArgs`.
   */
  caFile?: string
  /** Comma-separated ALPN protocols to offer. */
  alpn?: string
  /** Sent once connected. */
  input?: string | Buffer
  /** How many bytes to wait for on stdout before ending stdin. Default: the input's length (an echo peer). */
  expectBytes?: number
  /** E.g. `['-cert', fixturePath('client.pem'), '-key', fixturePath('client.key')]`, `['-tls1_2']`. */
  extraArgs?: string[]
  /** The client is killed (SIGKILL) when it still runs after this long. Default 10 s. */
  timeoutMs?: number
}

export interface OpensslClientResult {
  /** 0 after an orderly close, 1 when the connection or handshake failed, null when killed. */
  code: number | null
  /** Exactly the bytes received from the server (UTF-8 decoded). */
  stdout: string
  /**
   * The `-brief` summary ('Protocol version: TLSv1.3', 'Peer certificate: CN = localhost',
   * 'Verification: OK') or the errors ('verify error:num=10:certificate has expired').
   */
  stderr: string
  /** Killed for running longer than `timeoutMs`. */
  timedOut: boolean
}

/**
 * `openssl s_client` to 127.0.0.1:`port`. `-brief` keeps stdout for the server's bytes only and
 * `-nocommands` stops lines such as 'Q' or 'R' in the input from being taken as commands. The
 * input is written at once; stdin stays open until `expectBytes` came back, then it is closed, at
 * which s_client sends close_notify and exits (it also exits when the server closes). The ALPN
 * outcome is not printed in brief mode: check it on the other side.
 */
export function runOpensslClient(options: OpensslClientOptions): Promise<OpensslClientResult> {
  const { port, servername, caFile, alpn, input, extraArgs = [], timeoutMs = 10_000 } = options
  const data = input === undefined ? Buffer.alloc(0) : Buffer.from(input)
  const expectBytes = options.expectBytes ?? data.length
  const args = ['s_client', '-connect', `127.0.0.1:${port}`, '-brief', '-nocommands']
  if (servername !== undefined) args.push('-servername', servername)
  if (caFile !== undefined) args.push('-CAfile', resolveFile(caFile), '-verify_return_error')
  if (alpn !== undefined) args.push('-alpn', alpn)
  args.push(...extraArgs)
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] })
    const stdout: Buffer[] = []
    let received = 0
    let stderr = ''
    let timedOut = false
    const killer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    const endInputOnceReceived = () => {
      if (received >= expectBytes && !child.stdin.writableEnded) child.stdin.end()
    }
    child.stdin.on('error', () => {}) // EPIPE when it exited early (a failed handshake)
    child.stdout.on('data', (chunk: Buffer) => {
      stdout.push(chunk)
      received += chunk.length
      endInputOnceReceived()
    })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.on('error', (err) => {
      clearTimeout(killer)
      reject(err)
    })
    child.on('close', (code) => {
      clearTimeout(killer)
      resolve({ code, stdout: Buffer.concat(stdout).toString('utf8'), stderr, timedOut })
    })
    if (data.length > 0) child.stdin.write(data)
    endInputOnceReceived()
  })
}

export interface NodeTlsEchoServer {
  port: number
  server: tls.Server
  /** Every secure connection so far. */
  connections: tls.TLSSocket[]
  /** Errors of connections, failed handshakes included ('tlsClientError'): what went wrong for a rejected client. */
  errors: Error[]
  /** Destroys the connections and closes the server. Idempotent. */
  close(): Promise<void>
}

/**
 * A node:tls server on 127.0.0.1 (an ephemeral port) that echoes every byte of every connection,
 * and ends its side when the client ends.
 */
export async function nodeTlsEchoServer(options: tls.TlsOptions): Promise<NodeTlsEchoServer> {
  const connections: tls.TLSSocket[] = []
  const errors: Error[] = []
  const server = tls.createServer(options, (socket) => {
    connections.push(socket)
    socket.on('error', (err) => errors.push(err))
    socket.pipe(socket)
  })
  server.on('tlsClientError', (err) => errors.push(err))
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  let closed: Promise<void> | undefined
  return {
    port: (server.address() as net.AddressInfo).port,
    server,
    connections,
    errors,
    close() {
      closed ??= new Promise<void>((resolve) => {
        for (const socket of connections) socket.destroy()
        server.close(() => resolve())
      })
      return closed
    },
  }
}

/**
 * A node:tls client to 127.0.0.1:`port` (`options` may set `host`, `servername`, `ca`, `cert`...):
 * once connected, writes `payload`; resolves with what it received once `expectBytes` arrived
 * (0: right after the handshake), then ends the connection. Rejects with node's error (its `code`,
 * e.g. 'CERT_HAS_EXPIRED'), on a close before `expectBytes`, or after `timeoutMs`. In TLS 1.3 a
 * server rejects a client certificate only after the client's handshake completed: expect at least
 * one byte back to see that rejection.
 */
export function nodeTlsRequest(
  port: number,
  options: tls.ConnectionOptions,
  payload: Buffer,
  expectBytes: number,
  timeoutMs = 5000,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let received = 0
    let settled = false
    const socket = tls.connect({ host: '127.0.0.1', port, ...options })
    const finish = (err: Error | undefined) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (err !== undefined) {
        socket.destroy()
        reject(err)
        return
      }
      socket.end()
      // The peer may never answer our close: do not let the socket outlive the test for long.
      setTimeout(() => socket.destroy(), 1000).unref()
      resolve(Buffer.concat(chunks))
    }
    const progress = () => `${received} of ${expectBytes} bytes`
    const timer = setTimeout(() => finish(new Error(`node:tls request to port ${port}: ${progress()} after ${timeoutMs} ms`)), timeoutMs)
    socket.on('secureConnect', () => {
      socket.write(payload)
      if (received >= expectBytes) finish(undefined)
    })
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      received += chunk.length
      if (received >= expectBytes) finish(undefined)
    })
    socket.on('error', (err) => finish(err))
    socket.on('close', () => finish(new Error(`node:tls connection to port ${port} closed after ${progress()}`)))
  })
}
