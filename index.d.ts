// Type definitions and reference documentation of usockets-rs (hand-written; the native layer's
// generated types are in binding.d.ts and are internal).
//
// Threads: every Loop runs a native thread; all callbacks below run on the JavaScript thread
// that created the Loop (the main thread or a worker_thread), never concurrently.

/** Poll interest / readiness bit: the fd can be read. */
export declare const READABLE: 1
/** Poll interest / readiness bit: the fd can be written. */
export declare const WRITABLE: 2
/** `listen` option: share the port with other listeners (SO_REUSEPORT), e.g. one loop per core. */
export declare const LISTEN_DEFAULT: 0
/** `listen` option: fail with `EADDRINUSE` if the port is taken. */
export declare const LISTEN_EXCLUSIVE_PORT: 1
/** Resolution of socket timeouts, in seconds: a timeout fires at most this much late. */
export declare const TIMEOUT_GRANULARITY: 4

/** The `code` of errors thrown for calls that need an open loop. */
export type LoopClosedCode = 'ERR_LOOP_CLOSED'

export interface LoopOptions {
  /**
   * Runs on the loop's JavaScript thread after `loop.wakeup()` was called (coalesced: many
   * calls before it runs give one call, and there is always at least one call after the last
   * `wakeup()` unless the loop is closed first).
   */
  onWakeup?: (loop: Loop) => void
  /**
   * The most bytes of events (and, for sockets, received data) the loop holds that
   * JavaScript has not dispatched yet. Past it the loop stops producing (sockets stop reading,
   * so TCP flow control pushes back on the peer) until JavaScript catches up; nothing is
   * dropped. Integer, 65536 to 2^40. Default 8 MiB.
   */
  maxPendingBytes?: number
  /**
   * After handing events to JavaScript, the loop thread keeps polling without sleeping for
   * this many microseconds (yielding its core between polls), so the reply to what it
   * delivered, or the next request, is picked up without a thread wake-up: lower latency for
   * a connection that talks back and forth, paid in CPU (up to this long per delivery, also
   * when nothing comes). Integer, 0 to 10000. Default 0 (sleep at once). Measure before you
   * use it: `npm run bench -- tcp` shows a server with 50 beside the default.
   */
  spinMicroseconds?: number
  /**
   * Whether the JavaScript thread may run the loop's iterations itself while the loop is
   * light: no TLS in use on it, no bulk data moving, `spinMicroseconds` 0. Then each event
   * costs one thread wake-up instead of two (the loop thread waking for the socket, then
   * waking JavaScript): on a shared core that is most of a small round trip's overhead.
   * The loop thread takes the driving back at the first iteration that moves bulk data (one
   * socket reading 32 KiB or more in it, or 1 MiB of events in all; many sockets' small
   * messages stay with JavaScript) until the loop has been light for 100 ms, and for good
   * once the loop uses TLS (all TLS work stays off the JavaScript thread).
   * The difference you can observe: while JavaScript drives and a handler runs long, nothing
   * is read meanwhile (as with `node:net`), where the loop thread would read ahead into the
   * next batch, up to `maxPendingBytes`. Boolean. Default true; README, "Who runs the loop".
   */
  driveFromJavaScript?: boolean
}

/**
 * An event loop (`us_loop`): one native thread with an epoll poller that does the syscalls,
 * timers and all TLS work (handshakes, encryption, decryption), and delivers events to
 * JavaScript callbacks in batches. While the loop is light and uses no TLS, the JavaScript
 * thread may run its iterations instead (`LoopOptions.driveFromJavaScript`).
 *
 * Liveness: the process (or worker) stays alive exactly while some Loop holds an active
 * non-fallthrough handle (an armed timer, a started poll, ...). An idle loop never keeps it
 * alive, and calling `run()` is not required for anything to work.
 *
 * A Loop lives until `close()` or until its JavaScript environment ends (process exit or
 * worker termination stops and joins its thread). Loops are not collected by the GC while open:
 * close loops you create in numbers.
 */
export declare class Loop {
  constructor(options?: LoopOptions)
  /**
   * The loop of this JavaScript thread (one per main thread / worker), created on first use.
   * Constructors given no loop use it. If it was closed, a new default loop is made.
   */
  static default(): Loop
  /** Any value the user wants to attach (`us_loop_ext`). `undefined` until set. */
  ext: unknown
  /**
   * Resolves once the loop holds no active non-fallthrough handle (at once if it holds none,
   * or is closed). The promise itself does not keep the process alive.
   */
  run(): Promise<void>
  /**
   * Asks for one `onWakeup` call on the loop's JavaScript thread. Cheap and coalesced: any
   * number of calls before it runs give one call. A pending wakeup does not keep the process
   * alive (as in uSockets). Throws `ERR_LOOP_CLOSED` on a closed loop.
   */
  wakeup(): void
  /** How many iterations (polls) the loop has run so far, on its thread or driven from JavaScript. */
  readonly iterationNumber: number
  /**
   * Closes every handle of the loop (their callbacks never run again), stops and joins the
   * thread. Afterwards creating a handle on it and `wakeup()` throw an Error with
   * `code: 'ERR_LOOP_CLOSED'`, `run()` resolves at once, and a second `close()` and every method
   * of its closed handles are harmless no-ops.
   */
  close(): void
}

export interface HandleOptions {
  /**
   * A fallthrough handle never keeps the process alive by itself (like an unref'd Node timer).
   * Default false.
   */
  fallthrough?: boolean
}

/**
 * A precise timer (`us_timer`), in milliseconds. It never fires early: the first call comes no
 * sooner than `ms` after `set()` returns. Good for a few timers; for per-socket timeouts use the
 * cheap coarse `socket.timeout()`.
 *
 * If JavaScript is busy past several periods of a repeating timer, the missed expirations
 * collapse into one call (as with timerfd): a timer never has more than one call queued.
 */
export declare class Timer {
  /**
   * @param loop the loop to run on; `Loop.default()` when omitted or null.
   * @throws an Error with `code: 'ERR_LOOP_CLOSED'` if the loop is closed.
   */
  constructor(loop?: Loop | null, options?: HandleOptions)
  /** Any value the user wants to attach (`us_timer_ext`). `undefined` until set. */
  ext: unknown
  /**
   * Arms the timer: `callback(timer)` runs `ms` milliseconds from now, then every `repeatMs`
   * milliseconds (0: once). A new `set` replaces the previous one, and expiries of the previous
   * one that were already queued are dropped. `set(cb, 0, 0)` disarms. `ms` and `repeatMs` are
   * integers from 0 to 2^31-1 (a first delay of 0 with a non-zero repeat fires at once, then
   * repeats). Armed and not fallthrough, the timer keeps the process alive; a one-shot timer
   * stops doing so just before its callback runs (which may arm it again). On a closed timer,
   * or a timer of a closed loop, `set` does nothing.
   */
  set(callback: (timer: Timer) => void, ms: number, repeatMs?: number): void
  /** Disarms and frees the timer (`us_timer_close`). Its callback never runs again. Idempotent. */
  close(): void
}

/**
 * Watches any pollable file descriptor (`us_poll`): a socket, pipe, FIFO, eventfd or tty.
 *
 * Delivery is level-triggered as JavaScript sees it: the callback gets the ready subset of the
 * mask; it is not called again while a call is pending or running; if the fd is still ready
 * after the callback returned, it is called again. A callback that drains the fd is not called
 * again until new data arrives. Errors and hang-ups are reported as the whole mask (the next
 * read or write sees the error).
 *
 * The poll never closes the fd, and it must be stopped before its owner closes the fd: a closed
 * fd number may be reused for another file, which the poll would then watch.
 */
export declare class Poll {
  /**
   * @param loop the loop to run on; `Loop.default()` when omitted or null.
   * @throws an Error with `code: 'ERR_LOOP_CLOSED'` if the loop is closed.
   */
  constructor(loop?: Loop | null, options?: HandleOptions)
  /** Any value the user wants to attach (`us_poll_ext`). `undefined` until set. */
  ext: unknown
  /** The fd given to `init` (`us_poll_fd`); -1 before. */
  readonly fd: number
  /** The current interest mask (`us_poll_events`): READABLE | WRITABLE bits. */
  readonly events: number
  /**
   * Sets the fd to watch (`us_poll_init`).
   * @throws an Error with `code: 'EPERM'` for a regular file or directory, `'EBADF'` for a
   * descriptor that is not open, `'ERR_POLL_STARTED'` while the poll is started.
   */
  init(fd: number): void
  /**
   * Starts watching for `events` (READABLE | WRITABLE; 0 watches nothing) and calls
   * `callback(poll, readyEvents)` when the fd is ready (`us_poll_start`). On a started poll it
   * changes the mask and callback. Started and not fallthrough, the poll keeps the process alive.
   * @throws `ERR_POLL_NOT_INITIALIZED` before `init`; `EEXIST` if another poll of the same loop
   * watches this fd; `EPERM` / `EBADF` from the kernel.
   */
  start(events: number, callback: (poll: Poll, events: number) => void): void
  /** Changes the interest mask (`us_poll_change`). */
  change(events: number): void
  /**
   * Stops watching (`us_poll_stop`); the callback never runs again until the next `start`,
   * even for readiness already queued. The fd stays open.
   */
  stop(): void
  /** Stops the poll and frees it for good (`us_poll_free`). The fd stays open. Idempotent. */
  close(): void
}

/**
 * TLS options (`us_socket_context_options`, made safe): TLS 1.2 and 1.3 by rustls, on the loop
 * thread. Everything is loaded and checked when the context is created: a bad key, certificate,
 * CA or passphrase, or a key that does not match its certificate, throws an Error whose message
 * names the option, with a `code`: `'ERR_TLS_INVALID_KEY'`, `'ERR_TLS_INVALID_CERT'`,
 * `'ERR_TLS_INVALID_CA'`, `'ERR_TLS_KEY_MISMATCH'`, `'ERR_TLS_PASSPHRASE_REQUIRED'`,
 * `'ERR_TLS_BAD_PASSPHRASE'`, `'ERR_TLS_NO_CERTIFICATE'` / `'ERR_TLS_NO_KEY'` (one without the
 * other), `'ENOENT'` (a file name that cannot be read), `'ERR_INVALID_ARG_VALUE'` (content and
 * file name both given). Wrong types throw a TypeError naming the option.
 *
 * A context without `key`/`cert` can only connect (`listen` throws `'ERR_TLS_NO_CERTIFICATE'`).
 *
 * Debugging: with `SSLKEYLOGFILE` set in the environment when a TLS context is created, the
 * session secrets of its handshakes are appended to that file in the NSS key log format
 * (`CLIENT_HANDSHAKE_TRAFFIC_SECRET <client random> <secret>`, ...), which Wireshark reads to
 * decrypt a capture, as Node and curl do. Without it nothing is written. Never set it in
 * production: the file decrypts every session it lists.
 */
export interface TlsOptions {
  /** The private key, PEM (PKCS#8, PKCS#1 or SEC1; encrypted keys: PKCS#8 with `passphrase`). */
  key?: string | ArrayBufferView | Array<string | ArrayBufferView>
  /** The certificate, PEM; a chain is the leaf followed by its intermediates (all are sent). */
  cert?: string | ArrayBufferView | Array<string | ArrayBufferView>
  /** A file with the key instead of `key` (the seed's name). */
  keyFileName?: string
  /** A file with the certificate (chain) instead of `cert`. */
  certFileName?: string
  /** Decrypts an encrypted PKCS#8 key ("BEGIN ENCRYPTED PRIVATE KEY"); ignored for plain keys. */
  passphrase?: string
  /**
   * Trusted roots, PEM (several may be concatenated or given as an array). Client: used
   * instead of the bundled Mozilla roots. Server: client certificates are requested and must
   * verify against them (see `requestCert`, `rejectUnauthorized`).
   */
  ca?: string | ArrayBufferView | Array<string | ArrayBufferView>
  caFileName?: string
  /**
   * Default true. Client: the server's chain and name are verified; a failure ends the
   * connect in `onConnectError` with `'ERR_TLS_CERT_UNKNOWN_ISSUER'`,
   * `'ERR_TLS_CERT_ALTNAME_INVALID'`, `'ERR_TLS_CERT_EXPIRED'`, ... Server with `ca`: clients
   * without a valid certificate are refused. False: any certificate is taken (the peer must
   * still hold its key); for testing only.
   */
  rejectUnauthorized?: boolean
  /** Server: ask for a client certificate without requiring one (verified against `ca` if sent). */
  requestCert?: boolean
  /**
   * Client: the name sent as SNI and verified against the certificate. Default: the host given
   * to `connect` (`'localhost'` for `connectUnix`). An IP address is verified against the
   * certificate's IP entries and sends no SNI.
   */
  servername?: string
  /** ALPN protocols in order of preference, e.g. `['h2', 'http/1.1']` (1 to 255 bytes each). */
  alpnProtocols?: string[]
  /** The oldest version accepted: `'TLSv1.2'` (default) or `'TLSv1.3'`. */
  minVersion?: 'TLSv1.2' | 'TLSv1.3'
  /**
   * The newest version offered or accepted: `'TLSv1.3'` (default) or `'TLSv1.2'`. Above
   * `minVersion` or equal: `minVersion: 'TLSv1.3'` with `maxVersion: 'TLSv1.2'` throws a TypeError
   * with code `'ERR_TLS_PROTOCOL_VERSION_CONFLICT'`.
   */
  maxVersion?: 'TLSv1.2' | 'TLSv1.3'
  /**
   * Seconds a handshake may take (default 10; > 0, at most 86400, fractions allowed; a
   * RangeError otherwise), counted from accept (server; a PROXY header counts in), from the TCP
   * connect (client, unless a connect `timeout()` of its own is armed) or from `upgrade()`.
   * The expiry fires up to one timeout tick (`TIMEOUT_GRANULARITY`, 4 s) late. A server drops
   * a connection that never completed silently (it never reached `onOpen`); a client, and an
   * upgraded socket, close with `'ERR_TLS_HANDSHAKE_TIMEOUT'`.
   */
  handshakeTimeout?: number
  /**
   * Server: the key of the session tickets this context issues, 48 bytes (as Node's
   * `ticketKeys`; make them with `crypto.randomBytes(48)`). Contexts, workers and processes
   * given the same bytes resume each other's sessions, so a client resumes wherever a load
   * balancer sends it. Without it each context has a random key of its own, rotated every few
   * hours. Rotate shared keys with `setTls({ ..., ticketKeys })` on every server: tickets
   * under the previous keys still resume, tickets under older ones fall back to a full
   * handshake. Tickets sealed under shared keys tell clients to keep them at most 12 hours.
   * Keep the keys as secret as the private key: they decrypt the sessions they protect.
   */
  ticketKeys?: ArrayBufferView
  /** Accepted and ignored: rustls has no finite-field DHE (it uses ECDHE). */
  dhParamsFileName?: string
  /** Accepted and ignored: rustls offers only modern AEAD suites, in its own order. */
  sslCiphers?: string
  /** Accepted and ignored: rustls already frees idle buffers. */
  preferLowMemoryUsage?: boolean
}

/** A TLS socket's cipher suite (`socket.cipher`), as `node:tls`'s `getCipher()`. */
export interface TlsCipher {
  name: string
  standardName: string
  version: string
}

/** Options of `new SocketContext()`. */
export interface SocketContextOptions {
  /** Makes it a TLS context (`us_create_socket_context` with `ssl`). */
  tls?: TlsOptions
  /**
   * `socket.send()` returns false once the socket's `bufferedAmount` reaches this many bytes;
   * on TLS sockets `write()` takes at most up to it. Integer >= 1. Default 65536 (64 KiB).
   */
  highWaterMark?: number
  /**
   * TCP keep-alive for every socket the context accepts or connects, set when it opens (as
   * `socket.setKeepAlive(true, initialDelaySeconds)`): `true` is a 60 s delay. Default off.
   * Unix sockets: nothing to do. `createChild` inherits it unless told otherwise.
   */
  keepAlive?: boolean | { initialDelaySeconds?: number }
  /**
   * `onData`'s Buffer is lent, as uSockets lends its `on_data` bytes: valid until the handler
   * returns, then empty (its ArrayBuffer is detached; a kept Buffer reads as length 0, never as
   * other bytes). Copy what you keep (`Buffer.from(data)`), and copy before giving it to
   * anything that uses it later (a node stream's `write`, `fs.write`, a promise). `send` and
   * `write` are fine: they take the bytes before they return. Default false: the Buffer may be
   * kept (API.md).
   *
   * Why: a kept Buffer keeps the memory of its event batch, so the loop reads into memory that
   * only V8's next full collection gives back: cold in the cache, and the collections cost a
   * tenth of a bulk stream's CPU. Lent, a batch goes back to the loop when its dispatch ends,
   * still in the cache: the unbounded 64 KiB stream costs about 30% less CPU per chunk
   * (bench/RESULTS.md). A batch's memory goes back only if every handler its data went to
   * borrows (a context or UdpSocket without this option in the same loop and batch keeps the
   * batch's views valid). Data `pause()` holds back, and data read after `upgrade()`, is copied
   * (it outlives the batch). `createChild` inherits it unless told otherwise.
   */
  borrowData?: boolean
}

/** Options of `context.listen()` / `listenUnix()`, beside the numbers `LISTEN_DEFAULT` / `LISTEN_EXCLUSIVE_PORT`. */
export interface ListenOptions {
  /** Fail with `EADDRINUSE` if the port is taken, instead of sharing it (no SO_REUSEPORT). Default false. */
  exclusive?: boolean
  /** An IPv6 host (`'::'`) takes IPv6 connections only, not IPv4 ones too (IPV6_V6ONLY). Default false: dual-stack. */
  ipv6Only?: boolean
  /** The accept queue's length, integer >= 1 (the kernel caps it at `net.core.somaxconn`). Default 512, as uSockets. */
  backlog?: number
  /**
   * At most this many accepted connections open at once (integer >= 1). One more is accepted
   * and closed at once (the peer sees the connection end), never shown to JavaScript, and
   * counted in `listenSocket.droppedConnections`. Default: no limit.
   */
  maxConnections?: number
  /**
   * The PROXY protocol (HAProxy's, versions 1 and 2, told apart by their signatures) in front of
   * every accepted connection: `true` requires a header, `'optional'` honours one when the
   * connection begins with it and serves a connection without one as it is (health checks that
   * bypass the balancer). Default false. The header is read in the loop before TLS and
   * before `onOpen`; `remoteAddress`/`remotePort` and `localAddress`/`localPort` then report
   * the addresses it carries and `socket.proxy` the header; the bytes after it are the
   * connection's first (`onData`, or the TLS handshake). Bytes that cannot be a header (a
   * wrong signature, a v1 line over 107 bytes or not ending in CRLF, bad addresses or ports, a
   * v2 header of another version, command or family, a TLV past its end, a CRC32C that does not
   * match) close the connection at once, never shown to JavaScript, counted in
   * `rejectedConnections`; a header that trickles in, or a connection that sends nothing, has
   * the TLS handshake timeout (10 s, plus up to one 4 s tick), which then covers header and
   * handshake together. A connection that ends before its header did is rejected too.
   */
  proxyProtocol?: boolean | 'optional'
}

/** A PROXY protocol header, as `socket.proxy` holds it. */
export interface ProxyHeader {
  version: 1 | 2
  /** `'LOCAL'` (v2): the balancer's own connection, its addresses do not apply. */
  command: 'PROXY' | 'LOCAL'
  /** The client's address and port; undefined for v1 `UNKNOWN`, v2 `LOCAL` or an unspecified family (the connection's own addresses stand). v2 Unix: paths, ports -1. */
  sourceAddress: string | undefined
  sourcePort: number | undefined
  /** The address the client connected to (the balancer's). */
  destinationAddress: string | undefined
  destinationPort: number | undefined
  /**
   * v2 TLVs by type, in the order received, values as sent: 0x01 ALPN, 0x02 authority, 0x05
   * unique id, 0x20 SSL (client flags, verify result, sub-TLVs) followed by its sub-TLVs under
   * their own types (0x21 version, 0x22 common name, 0x23 cipher, 0x24 signature and 0x25 key
   * algorithm), 0x30 netns, and any other type. A CRC32C (0x03) was checked and is left out,
   * as are NOOPs (0x04). Empty for v1.
   */
  tlvs: Map<number, Buffer>
}

/** Options of `context.connect()`. */
export interface ConnectOptions {
  /** Local IP address to connect from (an address, not a name). */
  sourceHost?: string
  /** The new socket's initial `ext`. */
  ext?: unknown
}

/**
 * An Error from the network, shaped like Node's system errors. TLS failures have a `code`
 * starting with `'ERR_TLS_'` and an `errno` below -4200 (and no `syscall`):
 * - the peer's certificate: `'ERR_TLS_CERT_UNKNOWN_ISSUER'`, `'ERR_TLS_CERT_ALTNAME_INVALID'`
 *   (not valid for the name), `'ERR_TLS_CERT_EXPIRED'`, `'ERR_TLS_CERT_NOT_YET_VALID'`,
 *   `'ERR_TLS_CERT_REVOKED'`, `'ERR_TLS_CERT_SIGNATURE_INVALID'`, `'ERR_TLS_CERT_INVALID'`,
 *   `'ERR_TLS_CERT_REQUIRED'` (a client sent none);
 * - an alert from the peer: `'ERR_TLS_ALERT_HANDSHAKE_FAILURE'`, `'ERR_TLS_ALERT_BAD_CERTIFICATE'`,
 *   `'ERR_TLS_ALERT_UNKNOWN_CA'`, `'ERR_TLS_ALERT_CERTIFICATE_EXPIRED'`,
 *   `'ERR_TLS_ALERT_CERTIFICATE_REQUIRED'`, `'ERR_TLS_ALERT_PROTOCOL_VERSION'`,
 *   `'ERR_TLS_ALERT_NO_APPLICATION_PROTOCOL'`, `'ERR_TLS_ALERT_DECRYPT_ERROR'`,
 *   `'ERR_TLS_ALERT_UNRECOGNIZED_NAME'`, `'ERR_TLS_ALERT_BAD_RECORD_MAC'`, `'ERR_TLS_ALERT'`;
 * - the connection: `'ERR_TLS_PROTOCOL'` (not TLS, or malformed), `'ERR_TLS_DECRYPT'` (a
 *   corrupted record), `'ERR_TLS_HANDSHAKE_FAILURE'` (no version or cipher in common),
 *   `'ERR_TLS_NO_APPLICATION_PROTOCOL'`, `'ERR_TLS_HANDSHAKE_TIMEOUT'`, `'ERR_TLS_INTERNAL'`.
 */
export interface SocketError extends Error {
  /** The errno (positive), or a negative code where there is none (ENOTFOUND, TLS failures). */
  errno: number
  /** `'ECONNRESET'`, `'ECONNREFUSED'`, `'ENOTFOUND'`, `'ETIMEDOUT'`, `'ECANCELED'`, `'ERR_TLS_...'` */
  code: string
  /** `'read'` for errors of an open socket, `'connect'` for failed connects; none for TLS. */
  syscall?: string
}

/**
 * Shared handlers for a group of sockets (`us_socket_context`). Every `onX` setter replaces
 * that handler and returns the context, so calls chain. Handlers run on the loop's JS thread.
 *
 * Order per socket: `onOpen` → any of `onData` / `onWritable` / `onTimeout` / `onLongTimeout`
 * / `onEnd` → `onClose`. `onOpen` and `onClose` fire exactly once for every socket that opened,
 * and nothing fires after `onClose`. A connect ends in exactly one of `onOpen` or
 * `onConnectError`.
 */
export declare class SocketContext {
  /**
   * @param loop the loop to run on; `Loop.default()` when omitted or null.
   * @throws `ERR_LOOP_CLOSED` if the loop is closed; for `tls`, see {@link TlsOptions}.
   */
  constructor(loop?: Loop | null, options?: SocketContextOptions)
  /** Any value the user wants to attach (`us_socket_context_ext`). */
  ext: unknown
  /** The loop the context runs on. */
  readonly loop: Loop
  /** Whether this is a TLS context (children of a TLS context are too). */
  readonly isTls: boolean
  /**
   * A server accepted a connection (`isClient` false) or a client connected (`isClient` true).
   * The socket can write at once. TLS: after the handshake completed (a server never hears of
   * a connection whose handshake failed; a client's failed handshake ends in `onConnectError`).
   * A TLS handshake must complete within 10 s (plus up to one 4 s tick) unless a connect
   * `timeout` was set: servers drop the connection, clients get `'ERR_TLS_HANDSHAKE_TIMEOUT'`.
   */
  onOpen(handler: (socket: Socket, isClient: boolean, remoteAddress: string) => void): this
  /**
   * Bytes arrived (TLS: decrypted), in order; never an empty Buffer. Its bounds are not the
   * peer's write boundaries: what the loop read from the socket in one iteration comes as one
   * Buffer (for TLS, all the records it decrypted). The Buffer belongs to JS and may be kept; it
   * is a view into the memory of the event batch it came in (up to `maxPendingBytes`), which
   * stays allocated while any such view is referenced: copy small parts you keep for long.
   * With the context option `borrowData` it is valid only until the handler returns.
   */
  onData(handler: (socket: Socket, data: Buffer) => void): this
  /**
   * After a `write` that took fewer bytes than given, once the socket can take more; after
   * `send` buffered bytes, once the buffer is empty (`bufferedAmount` is then 0). May
   * occasionally fire when nothing is pending; write again and check the return value.
   */
  onWritable(handler: (socket: Socket) => void): this
  /**
   * The peer finished sending (TCP FIN; TLS: close_notify or FIN). With a handler the socket
   * stays open for writing until your code shuts it down or closes it; without one the socket
   * is closed.
   */
  onEnd(handler: (socket: Socket) => void): this
  /** The socket's `timeout` expired. Nothing is closed automatically. */
  onTimeout(handler: (socket: Socket) => void): this
  /** The socket's `longTimeout` expired. Nothing is closed automatically. */
  onLongTimeout(handler: (socket: Socket) => void): this
  /**
   * The last call for a socket. After `socket.close(code, reason)`: those values. Orderly end
   * (both sides finished, or closed after `onEnd`): `0`, `undefined`. Error (reset, a TLS alert
   * or protocol error, ...): the errno (TLS: a negative code) and a {@link SocketError}
   * (`code: 'ECONNRESET'`, `'ERR_TLS_DECRYPT'`, ...); a TLS protocol failure sends the peer an
   * alert first. The socket's addresses and ports are still readable here.
   */
  onClose(handler: (socket: Socket, code: number, reason: any) => void): this
  /**
   * A connect failed: refused, unreachable, name not found, a TLS handshake or verification
   * failure (`'ERR_TLS_CERT_...'`, `'ERR_TLS_ALERT_...'`), or a `timeout` set on the connecting
   * socket expired (`ETIMEDOUT`; for TLS it covers the handshake). A connecting socket whose
   * context or loop is closed ends here too, with `ECANCELED`. `code` is the errno, or negative
   * where there is none (ENOTFOUND, TLS); `error.code` says why.
   */
  onConnectError(handler: (socket: Socket, code: number, error: SocketError) => void): this
  /**
   * TLS servers: a client asked (SNI) for a name no `addServerName` pattern matches. The
   * handshake waits for the handler; it may `addServerName` for the name, and then goes on
   * with it (else with the context's own certificate; also when the handler throws). Setting
   * a handler turns the asking on; names are asked about only with one.
   */
  onServerName(handler: (context: SocketContext, hostname: string) => void): this
  /**
   * Listens on TCP (`us_socket_context_listen`). Synchronous: a host *name* is resolved on the
   * spot (pass an address to avoid that). `host` null or `''`: all interfaces, dual-stack; an
   * IPv6 address with or without brackets (`'::1'`, `'[::1]'`), as in `connect`.
   * `port` 0: an ephemeral port (read `listenSocket.port`). `options`: `LISTEN_DEFAULT` (0)
   * shares the port with other listeners (SO_REUSEPORT); `LISTEN_EXCLUSIVE_PORT` (1) fails if it
   * is taken; or a {@link ListenOptions} object. Accepted sockets get `TCP_NODELAY`.
   * @throws a `TypeError` (`'ERR_INVALID_ARG_VALUE'`) for a host with a NUL character (no name
   * or address has one: refused rather than cut short); an Error with `code` (`'EADDRINUSE'`,
   * `'EACCES'`, `'ENOTFOUND'`, ...) when binding fails.
   */
  listen(host: string | null | undefined, port: number, options?: number | ListenOptions): ListenSocket
  /**
   * Listens on a Unix socket path (`us_socket_context_listen_unix`). A stale socket file at the
   * path is replaced. TLS contexts serve TLS here too. A path with a NUL character is a
   * `TypeError` (`'ERR_INVALID_ARG_VALUE'`): Linux's abstract namespace (a leading NUL) is not
   * supported. Of {@link ListenOptions}, `backlog`, `maxConnections` and `proxyProtocol` apply
   * (v2 headers carry Unix addresses too); `exclusive` and `ipv6Only` mean nothing for a path.
   */
  listenUnix(path: string, options?: number | ListenOptions): ListenSocket
  /**
   * Listens on an inherited listening descriptor: a TCP or Unix stream socket that is bound
   * and listening already, such as systemd socket activation passes (`LISTEN_FDS`: fds 3, 4,
   * ...; README, "Deployment") or a parent process hands down. On success the descriptor
   * belongs to the returned listen socket (made non-blocking and close-on-exec) and is closed
   * with it: do not use or close it yourself. A TLS context serves TLS on it. Of
   * {@link ListenOptions}, `maxConnections` and `proxyProtocol` apply and `backlog` is set
   * anew; `exclusive` / `ipv6Only` throw `ERR_INVALID_ARG_VALUE` (it is bound already).
   * @throws a `RangeError` / `TypeError` for an fd that is not an integer 0 to 2^31 - 1; an Error
   * with `code`, the descriptor left open and still yours, for one that is not open
   * (`'EBADF'`), not a socket (`'ENOTSOCK'`), not a TCP or Unix stream socket
   * (`'ESOCKTNOSUPPORT'`) or not listening (`'EINVAL'`).
   */
  listenFd(fd: number, options?: number | ListenOptions): ListenSocket
  /**
   * Takes over an inherited connected descriptor (`us_adopt_accepted_socket`), as if a listener
   * of this context had accepted it: `onOpen(socket, false, remoteAddress)` follows (for TLS,
   * once the handshake this side runs as the server completed; a failed one is
   * `onConnectError` with its code, since JavaScript had the socket from the start). On success
   * the descriptor belongs to the returned socket (non-blocking, close-on-exec, `TCP_NODELAY`)
   * and is closed with it.
   * @throws as {@link SocketContext.listenFd}, with `'EINVAL'` for a listening socket and
   * `'ENOTCONN'` for one not connected; the descriptor is then left open and still yours.
   */
  adoptFd(fd: number, options?: { ext?: unknown }): Socket
  /**
   * Connects (`us_socket_context_connect`): returns a connecting socket at once; `onOpen` or
   * `onConnectError` follows. A host name is resolved off the loop thread and every resolved
   * address is tried in turn; an address (IPv4, or IPv6 with or without brackets) is used as is.
   * A host (or `sourceHost`) with a NUL character is a `TypeError` (`'ERR_INVALID_ARG_VALUE'`).
   */
  connect(host: string, port: number, options?: ConnectOptions): Socket
  /** Connects to a Unix socket path (TLS: the certificate must be valid for `tls.servername`, default `'localhost'`). */
  connectUnix(path: string, options?: { ext?: unknown }): Socket
  /**
   * Moves a socket to this context (`us_socket_context_adopt_socket`): its later events go to
   * this context's handlers; no `onOpen`; its timeouts are cleared; `ext` is kept; a TLS
   * socket keeps its session. Same loop only, and TLS sockets only into TLS contexts (plain
   * into plain): otherwise it throws `ERR_INVALID_ARG_VALUE`. Returns the same Socket object; a
   * closed socket is returned unchanged.
   */
  adoptSocket(socket: Socket): Socket
  /** The seed's name for `adoptSocket`. */
  link(socket: Socket): Socket
  /**
   * STARTTLS: `socket`, an open plain socket of this loop, becomes a TLS socket of this context,
   * and this context's handlers get its events from now on. A socket that connected becomes a
   * TLS client (it sends the ClientHello at once and verifies the server as any client of this
   * context: `ca` or the bundled roots, the name `options.servername`, else `tls.servername`,
   * else the host it connected to); one that was accepted (or adopted with `adoptFd`) becomes a
   * TLS server (SNI, `onServerName`, ALPN, client certificates as this context says).
   *
   * The byte stream: what `write`/`send` took before the call goes out in clear, before the
   * first TLS byte. What arrives after the last `onData` delivered before the call belongs to
   * the TLS session: bytes the loop had read but not delivered (a client may send its
   * ClientHello without waiting for your reply) are handed to the session, never to `onData`;
   * data held back by `pause()` too. Bytes of the current `onData` chunk that followed the
   * command (a peer that pipelined its ClientHello) are yours to hand over as `options.head`:
   * they are read first (copied at the call: a `borrowData` Buffer or a reused one is fine). Reply and upgrade in the same turn of the event loop (write the `220`,
   * then call `upgrade`): the peer starts TLS once it read the reply.
   *
   * Writes after the call are queued and encrypted once the handshake completed. Its completion
   * is this context's `onOpen(socket, isClient, remoteAddress)` (the addresses are the ones the
   * socket opened with); a failure is `onClose(socket, code, err)` with the TLS code
   * (`'ERR_TLS_CERT_...'`, `'ERR_TLS_ALERT_...'`, `'ERR_TLS_HANDSHAKE_TIMEOUT'`), or
   * `ECONNRESET` if the peer went away. Timeouts armed on the socket are cleared; the
   * context's `handshakeTimeout` bounds the handshake. Returns the same Socket object.
   * @throws `ERR_INVALID_ARG_VALUE` (the socket unchanged) for a socket that is TLS already,
   *   closed, still connecting, shut down, or of another loop; `ERR_TLS_REQUIRED` on a plain
   *   context; `ERR_TLS_NO_CERTIFICATE` for an accepted socket when this context has no
   *   certificate; a TypeError for wrong argument types.
   */
  upgrade(socket: Socket, options?: { servername?: string; head?: ArrayBufferView }): Socket
  /**
   * Certificate rotation without a restart (as Node's `server.setSecureContext`): handshakes
   * that start after the call use `options` (all of {@link TlsOptions}: key, certificate, CA,
   * versions, ALPN, ...), in this context and in the contexts sharing its configuration
   * (`createChild`). Open sockets, and handshakes whose ClientHello was already read, keep what
   * they have. Server names (`addServerName`) keep their entries: add a pattern again to rotate
   * its certificate. Session caches carry over, so clients resume across a rotation; with
   * `ticketKeys`, those become the ticket key (the previous one still opens its tickets). A
   * client's cached sessions were verified under the trust settings they were made with: after
   * a `setTls` that changes `ca` or `rejectUnauthorized`, it still resumes them until they
   * expire; to drop them, connect from a new context.
   * @throws what the constructor throws for the same options, and then nothing changed;
   *   `ERR_TLS_NO_CERTIFICATE` when a context that serves is given no key and certificate;
   *   `ERR_TLS_REQUIRED` on a plain context.
   */
  setTls(options: TlsOptions): void
  /**
   * A new context on the same loop with its own handlers: an adoption target. It shares this
   * context's TLS configuration and server names (its `options.tls` is ignored).
   */
  createChild(options?: SocketContextOptions): SocketContext
  /**
   * SNI (`us_socket_context_add_server_name`): clients asking for a name matching `pattern`
   * are served with the key and certificate of `tls`; its other options default to the
   * context's. Patterns are names or `*.` wildcards for exactly one leftmost label
   * (`*.example.com` matches `a.example.com`, not `example.com` or `a.b.example.com`); case
   * does not matter; an exact name beats a wildcard; adding a pattern again replaces it.
   * Applies to handshakes that start afterwards.
   * @throws `ERR_TLS_REQUIRED` on a plain context; errors of {@link TlsOptions}.
   */
  addServerName(pattern: string, tls: TlsOptions, ext?: unknown): void
  /** Removes exactly this pattern (TLS contexts only, else `ERR_TLS_REQUIRED`). */
  removeServerName(pattern: string): void
  /**
   * The `ext` of the entry that serves `name` (a pattern also finds its own entry); undefined
   * when none does, or on a plain context.
   */
  findServerNameExt(name: string): unknown
  /**
   * Closes the context's listen sockets, then every socket: `onClose` fires for each open one
   * (connecting ones get `onConnectError` with `ECANCELED`) before this returns. The context
   * stays usable.
   */
  close(): void
}

/**
 * A listening socket (`us_listen_socket`). Open, it keeps the process alive. Closing it stops
 * accepting (the port is free when `close()` returns); open sockets stay.
 */
export declare class ListenSocket {
  /** Not constructible (throws a TypeError): listen sockets come from `listen()` and `listenUnix()`. */
  private constructor()
  /** The bound port (-1 for Unix sockets). */
  readonly port: number
  /** The host given to `listen` (`''` for all interfaces), or the path for Unix sockets. */
  readonly host: string
  readonly context: SocketContext
  readonly isClosed: boolean
  /**
   * Connections this listener accepted and closed before `onOpen`, never shown to JavaScript:
   * bytes that cannot begin a TLS handshake (closed at once, with an alert where TLS has one)
   * or a PROXY header (`proxyProtocol`), a failed or timed-out handshake or header, a peer that
   * left during either. Once the listener is closed,
   * the count it had then.
   */
  readonly rejectedConnections: number
  /** Connections closed at once because `maxConnections` were open; once closed, the count it had then. */
  readonly droppedConnections: number
  /** Idempotent. */
  close(): void
}

/**
 * A TCP, Unix or TLS socket (`us_socket`), valid from `connect()` / `onOpen` until `onClose` (or
 * `onConnectError`); afterwards every method is a harmless no-op. Connecting or open, it keeps
 * the process alive. Not constructible: sockets come from `connect()` and accepts.
 */
export declare class Socket {
  /** Not constructible (throws a TypeError). */
  private constructor()
  /** Any value the user wants to attach (`us_socket_ext`). Kept across `adoptSocket`. */
  ext: unknown
  /** The context whose handlers get this socket's events. */
  readonly context: SocketContext
  readonly isClosed: boolean
  /** We sent FIN (`shutdown()`), or asked to once buffered data is out. */
  readonly isShutDown: boolean
  /** False while connecting (until `onOpen` runs) and once closed. */
  readonly isEstablished: boolean
  readonly isTls: boolean
  /** TLS: the ALPN protocol agreed on in the handshake; undefined when none (or not TLS). */
  readonly alpnProtocol: string | undefined
  /**
   * TLS: the SNI name. Server: the name the client asked for; client: the name sent (none when
   * connecting to an IP address). Undefined when none, or not TLS.
   */
  readonly servername: string | undefined
  /**
   * TLS: the DER certificate the peer presented (the first of its chain); undefined when it
   * sent none, or not TLS. Set from `onOpen` on.
   */
  readonly peerCertificate: Buffer | undefined
  /** TLS: the protocol version, `'TLSv1.3'` or `'TLSv1.2'`, from `onOpen` on; undefined before, or not TLS. */
  readonly tlsVersion: 'TLSv1.3' | 'TLSv1.2' | undefined
  /**
   * TLS: the cipher suite, as `node:tls`'s `getCipher()`: OpenSSL's name
   * (`'TLS_AES_256_GCM_SHA384'`, `'ECDHE-ECDSA-AES128-GCM-SHA256'`), the IANA name, and the
   * oldest protocol version it works with. From `onOpen` on; undefined before, or not TLS.
   */
  readonly cipher: TlsCipher | undefined
  /**
   * TLS: the handshake resumed an earlier session (a ticket, or a TLS 1.2 session id) instead
   * of a full handshake. Sessions resume by default: each client context keeps a bounded
   * cache (256 servers) and offers what it holds; each server context issues tickets (see
   * `ticketKeys`) and keeps a bounded cache of 4096 sessions for clients without tickets.
   * False before `onOpen`, and for plain sockets.
   */
  readonly isSessionReused: boolean
  /**
   * TLS: `length` bytes (1 to 16384) of keying material exported from the session (RFC 5705,
   * RFC 8446 §7.5), equal on both ends for the same `label` and `context`; as `node:tls`'s
   * `exportKeyingMaterial`. Asks the loop thread, which holds the session, and waits for its
   * answer (one wake-up: microseconds; do not call it per message on a hot path).
   * @throws `ERR_TLS_INVALID_STATE` when the socket is not TLS, its handshake has not
   *   completed, or it is closed; RangeError / TypeError for bad arguments.
   */
  exportKeyingMaterial(length: number, label: string, context?: ArrayBufferView): Buffer
  /** The PROXY protocol header the connection began with (a listener's `proxyProtocol`); undefined without one. Set from `onOpen` on. */
  readonly proxy: ProxyHeader | undefined
  /** IPv4 peers show as `'127.0.0.1'` (also on dual-stack listeners); Unix: the path or `''`. */
  readonly remoteAddress: string
  readonly localAddress: string
  /** -1 for Unix sockets (and before `onOpen`). */
  readonly remotePort: number
  readonly localPort: number
  /** The descriptor (`us_socket_get_native_handle`); -1 once closed or while connecting. */
  readonly fd: number
  /**
   * Bytes taken by `send` and not yet given to the kernel, as of the last event or JS call;
   * 0 when the `onWritable` that reports the drain runs. TLS: all written plaintext not yet
   * encrypted plus records not yet given to the kernel, read when asked.
   */
  readonly bufferedAmount: number
  /**
   * Writes what the kernel takes now and returns that count (`us_socket_write`); never
   * queues: resend the rest after `onWritable`. 0 while connecting, after `shutdown`, once
   * closed, and while `send` data is buffered (so bytes never overtake each other). Strings are
   * sent as UTF-8. `msgMore` is the MSG_MORE hint (push it out with `flush()`).
   *
   * TLS: takes the bytes for the loop thread to encrypt and send, as many as keep
   * `bufferedAmount` within the context's `highWaterMark`; a partial take is followed by
   * `onWritable` once everything is out. Writes made during one dispatch go out together, so
   * `msgMore` is not needed (and ignored).
   */
  write(data: string | ArrayBufferView, msgMore?: boolean): number
  /** Writes both buffers in one `writev` (`us_socket_write2`; TLS: in the same records); returns the bytes taken. */
  write2(header: string | ArrayBufferView, payload: string | ArrayBufferView): number
  /**
   * Takes all bytes, buffering natively what the kernel does not take yet; written in order.
   * Returns false once `bufferedAmount` reaches the context's `highWaterMark` (keep sending
   * only after `onWritable`). On a connecting, shut-down or closed socket it takes nothing and
   * returns false.
   */
  send(data: string | ArrayBufferView): boolean
  /** Pushes out data held back by `msgMore` (`us_socket_flush`; nothing to do for TLS). */
  flush(): void
  /**
   * Sends FIN once buffered data is out (`us_socket_shutdown`; TLS: close_notify first); later
   * writes take nothing. When the peer has finished too, the socket closes by itself with
   * `onClose(socket, 0)`.
   */
  shutdown(): void
  /** Stops reading (`us_socket_shutdown_read`): `onEnd` (or a close) follows. */
  shutdownRead(): void
  /**
   * Closes the socket (`us_socket_close`): `onClose(socket, code, reason)` runs before this
   * returns. On a connecting socket it cancels the connect and nothing fires. On a closed socket
   * it does nothing. Abrupt: unsent data is dropped (TLS: no close_notify; use `shutdown()`).
   */
  close(code?: number, reason?: any): void
  /**
   * A cheap, coarse one-shot timeout (`us_socket_timeout`): `onTimeout` fires no earlier than
   * `seconds` and at most `TIMEOUT_GRANULARITY` (4) seconds later. Traffic does not reset it;
   * call again to re-arm; 0 disables. Integer 0 to 604800 (a week). On a connecting socket it is
   * a connect timeout: `onConnectError` with `ETIMEDOUT`.
   */
  timeout(seconds: number): void
  /** Like `timeout` in minutes (`us_socket_long_timeout`); integer 0 to 525600 (a year). */
  longTimeout(minutes: number): void
  /**
   * Stops reading from this socket (TCP flow control pushes back on the peer). No `onData`,
   * `onEnd` or loop-initiated `onClose` runs while paused: what the loop had already read when
   * it saw the pause is held, with an end or close behind it.
   */
  pause(): void
  /**
   * Reads again after `pause()`. What was held is delivered first, in order, right after the
   * calling code returns (a close that came in meanwhile runs after the held data).
   */
  resume(): void
  /**
   * TCP keep-alive: SO_KEEPALIVE with the first probe after `initialDelaySeconds` (integer
   * seconds, 1 to 32767; default 60) of idleness (TCP_KEEPIDLE), then one every 10 s
   * (TCP_KEEPINTVL); after 3 unanswered (TCP_KEEPCNT) the kernel gives up and the socket ends
   * in `onClose` with `ETIMEDOUT`. A dead peer is so noticed at most `initialDelaySeconds + 30`
   * seconds after the last traffic. `false` turns it off. Unix sockets and closed sockets:
   * nothing to do. Returns the socket.
   */
  setKeepAlive(enable: boolean, initialDelaySeconds?: number): this
  /** TCP_NODELAY on (the default from the start, as in uSockets) or off (Nagle). Unix and closed sockets: nothing to do. Returns the socket. */
  setNoDelay(noDelay?: boolean): this
  /**
   * An abortive close (SO_LINGER 0): data not yet sent is dropped and the peer sees a reset
   * (`ECONNRESET`) instead of an orderly end. As with `close(code, reason)`, `onClose(socket,
   * code, reason)` runs before it returns; idempotent.
   */
  terminate(code?: number, reason?: any): void
}

/**
 * Options of `new UdpSocket()`. `onData` is required: a socket that cannot hear is a mistake.
 */
export interface UdpSocketOptions {
  /** The address to bind: null, undefined or `''` is every interface, dual-stack (`'::'`). A name is resolved synchronously. */
  host?: string | null
  /** 0 (default): an ephemeral port. Integer 0 to 65535. */
  port?: number
  /** Fail with `EADDRINUSE` if the port is taken, instead of sharing it (no SO_REUSEPORT). Default false. */
  exclusive?: boolean
  /** An IPv6 wildcard takes IPv6 datagrams only. Default false (dual-stack). */
  ipv6Only?: boolean
  /**
   * Default true: `send` called while the loop dispatches a batch (in `onData`, or any handler
   * the loop calls) copies the datagram and hands it to the kernel when that batch's dispatch
   * ends, in one `sendmmsg` with the socket's other sends of the batch: in order, microseconds
   * later, and at a fraction of the CPU (one syscall and one pass of the loopback or NIC path
   * for many datagrams, as uSockets' packet buffers do: about 5 µs per echoed datagram instead
   * of 6-8 in `npm run bench -- udp`). `send` then returns true for "taken"; datagrams the kernel
   * refuses at the flush (its buffer full, an error) are dropped and counted in `sendDropped`,
   * and `send` returns false until `onDrain`. Outside a dispatch (a timer of Node's, a
   * promise continuation) `send` goes to the kernel at once either way. False: every `send`
   * goes to the kernel at once and returns its answer.
   */
  coalesceSends?: boolean
  /**
   * `onData`'s Buffer is valid only until the handler returns, then empty: as the
   * SocketContext option of this name, which says why. Default false.
   */
  borrowData?: boolean
  /**
   * Once per datagram, in arrival order. `data` is a view into the event batch it came in (as
   * `onData` of a TCP socket: it may be kept, unless `borrowData`; copy small parts you keep for long); `address`
   * is the sender's IP address (IPv4 senders of a dual-stack socket as IPv4), `port` its port.
   */
  onData: (socket: UdpSocket, data: Buffer, port: number, address: string) => void
  /** After a `send` returned false (or a coalesced flush found the kernel full), once it can take datagrams again. */
  onDrain?: (socket: UdpSocket) => void
  /**
   * What the kernel reported about the socket: an ICMP error about the connected peer
   * (`err.code` `'ECONNREFUSED'`: nothing listens there), met by the loop's receive or by a
   * `send` (which then returns false and this runs right after). Each is reported once; the
   * socket stays open. Without a handler a receive error is an uncaught exception (as an
   * unhandled `'error'` of node:dgram) and a send error is thrown by `send`.
   */
  onError?: (socket: UdpSocket, err: SocketError) => void
}

/**
 * A bound UDP socket (`us_udp_socket`) on a loop's thread: datagrams are read there with
 * `recvmmsg` (up to 16 per syscall) straight into the event batches and reach `onData` with
 * the loop's other events; `send` goes from the calling thread to the kernel, as TCP `write`
 * does. Memory is bounded as for TCP: with `maxPendingBytes` of undelivered events the loop
 * stops reading, and the kernel drops what its receive buffer cannot hold; `receivedDropped`
 * counts those. An open UdpSocket keeps the process (or worker) alive, like a listen socket;
 * `loop.close()` closes it; the methods of a closed one are harmless (`send` returns false).
 */
export declare class UdpSocket {
  /**
   * Binds at once.
   * @throws a `TypeError` / `RangeError` naming the option for a wrong type or range (`onData`
   * missing included); an Error with `code` when binding fails (`'EADDRINUSE'`, `'EACCES'`,
   * `'EADDRNOTAVAIL'`, `'ENOTFOUND'` for a host name that does not resolve).
   */
  constructor(loop: Loop | null | undefined, options: UdpSocketOptions)
  /** The bound port (the ephemeral one chosen for port 0). */
  readonly port: number
  /** The bound address (`'::'` for dual-stack). */
  readonly address: string
  readonly isClosed: boolean
  /**
   * Datagrams the kernel dropped for this socket since it was bound: nearly always because its
   * receive buffer was full (the kernel's own count, `sk_drops` read with SO_MEMINFO when you
   * read this, which also counts the rare datagram with a bad checksum; kept as it was once
   * closed). A slow consumer sees its loss here instead of guessing.
   */
  readonly receivedDropped: number
  /**
   * Datagrams `send` took while coalescing (see `coalesceSends`) that the kernel refused when
   * they were flushed: its send buffer was full, or it reported an error (which went to
   * `onError`). Kept once closed. Always 0 with `coalesceSends: false`.
   */
  readonly sendDropped: number
  /** Any value; usockets-rs never reads it. */
  ext: unknown
  /** The connected peer (undefined while not connected). */
  readonly remoteAddress: string | undefined
  readonly remotePort: number | undefined
  /**
   * Sets a default peer (an IP address: names are not resolved; port 1 to 65535): `send(data)`
   * goes there, only its datagrams are received, and ICMP errors about it reach `onError`.
   * Connecting again replaces it. A no-op on a closed socket.
   * @throws the kernel's error with `code` (`'ENETUNREACH'`, ...), as `send` does.
   */
  connect(address: string, port: number): void
  /**
   * Dissolves the default peer.
   * @throws `ERR_SOCKET_DGRAM_NOT_CONNECTED` when not connected.
   */
  disconnect(): void
  /**
   * Sends one datagram to the connected peer.
   * @throws `ERR_SOCKET_DGRAM_IS_CONNECTED` if given a port or address while connected.
   */
  send(data: string | ArrayBufferView): boolean
  /**
   * Sends one datagram to `address` (an IPv4 or IPv6 address: names are not resolved here,
   * resolve them once with `dns.lookup` and send to the address) and `port`. Returns false when
   * the kernel cannot take it now: it was not sent, and `onDrain` follows once it can; also
   * false on a closed socket. While the loop dispatches a batch it is coalesced with the
   * batch's other sends into one `sendmmsg` (see `coalesceSends`): true means taken.
   * @throws a `TypeError` (`'ERR_INVALID_ARG_VALUE'`) for an address that is not an IP address; a
   * `RangeError` for a port outside 1 to 65535 or data over 65,507 bytes (IPv4; 65,527 for IPv6),
   * nothing sent. What the kernel refuses (`'ENETUNREACH'`, `'EACCES'` for a broadcast address
   * without `setBroadcast`, an ICMP error) goes to `onError` (send returns false), or is thrown
   * without one.
   */
  send(data: string | ArrayBufferView, port: number, address: string): boolean
  /**
   * Sends many datagrams in one `sendmmsg`: `[data, port, address, data, port, address, ...]`,
   * or on a connected socket `[data, data, ...]` (up to 1,024 per call). Returns how many the
   * kernel took, in order; the rest were not sent (`onDrain` follows). Every entry is checked
   * as `send` checks its arguments before any is sent.
   */
  sendMany(packets: ReadonlyArray<string | ArrayBufferView | number>): number
  /** SO_BROADCAST: allows sending to broadcast addresses. Off by default. */
  setBroadcast(on: boolean): void
  /** The unicast TTL (IPv6: hop limit), integer 1 to 255; returns it. */
  setTTL(ttl: number): number
  /** The multicast TTL (IPv6: hop limit), integer 0 to 255 (default 1: the local network); returns it. */
  setMulticastTTL(ttl: number): number
  /** Whether this host's own multicast datagrams are delivered back to it (default true); returns it. */
  setMulticastLoopback(on: boolean): boolean
  /** The interface multicast leaves by: an IPv4 address; IPv6 `'::%eth0'` (a name or index after the `%`). */
  setMulticastInterface(multicastInterface: string): void
  /**
   * Joins a multicast group (IP_ADD_MEMBERSHIP / IPV6_JOIN_GROUP) on `multicastInterface`
   * (as in `setMulticastInterface`; none: the kernel picks by route).
   * @throws `ERR_INVALID_ARG_VALUE` for an address that is not multicast; the kernel's error with `code` (`'ENODEV'`, ...).
   */
  addMembership(multicastAddress: string, multicastInterface?: string): void
  /** Leaves a group joined with `addMembership`. */
  dropMembership(multicastAddress: string, multicastInterface?: string): void
  /** SO_RCVBUF in bytes; returns what the kernel set (it doubles the request for its bookkeeping, within `net.core.rmem_max`). */
  setRecvBufferSize(bytes: number): number
  /** SO_SNDBUF in bytes; returns what the kernel set (within `net.core.wmem_max`). */
  setSendBufferSize(bytes: number): number
  getRecvBufferSize(): number
  getSendBufferSize(): number
  /** Closes the socket; its port is free when this returns. Idempotent. Every method of a closed socket is a no-op (`send` returns false, `sendMany` 0). */
  close(): void
}
