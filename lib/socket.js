// @ts-check
// Socket and ListenSocket: the handle-table entries of a SocketContext's connections and
// listeners. A Socket takes its own records (EVENT_OPEN, EVENT_DATA, ...); a listener's records
// (accepts, ServerName questions) reach it through lib/dispatch.js.
'use strict'

const {
  EVENT_OPEN,
  EVENT_DATA,
  EVENT_WRITABLE,
  EVENT_END,
  EVENT_TIMEOUT,
  EVENT_LONG_TIMEOUT,
  EVENT_CLOSE,
  EVENT_CONNECT_ERROR,
  EVENT_UPGRADED,
  SLOT_INDEX_RANGE,
  ERRNO_EPIPE,
  ERRNO_ECANCELED,
} = require('../binding.js')
const {
  kStamp,
  kDispatch,
  kCloseByLoop,
  kContextState,
  kConstructToken,
  kAcceptConnection,
  kServerNameRequested,
  kMoveToContext,
  kUpgrade,
  kTcpOptions,
} = require('./symbols.js')
const { reportUncaught, socketError, systemError, withCode } = require('./errors.js')
const { invalidArgType, validateInteger, bytesOf } = require('./validate.js')
const { dataOf, openedByConnect, openedAddresses } = require('./dispatch.js')

/**
 * @typedef {import('./context.js').SocketContext} SocketContext
 * @typedef {import('./loop.js').LoopState} LoopState
 * @typedef {import('../binding.js').TlsSocketInfo} TlsSocketInfo
 */

// socket.timeout() accepts up to a week, longTimeout() up to a year of minutes.
const MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
const MAX_LONG_TIMEOUT_MINUTES = 365 * 24 * 60
// exportKeyingMaterial's longest output (RFC 5705 allows more; nothing needs it).
const MAX_KEYING_MATERIAL_BYTES = 16 * 1024
// TCP keep-alive: the default idle delay, and Linux's largest TCP_KEEPIDLE (seconds).
const DEFAULT_KEEPALIVE_SECONDS = 60
const MAX_KEEPALIVE_SECONDS = 32767

/**
 * @param {unknown} seconds
 * @param {string} name
 * @returns {number}
 */
function validateKeepAliveDelay(seconds, name) {
  validateInteger(seconds, name, 1, MAX_KEEPALIVE_SECONDS)
  return seconds
}

/**
 * `socket.proxy` from the binding's PROXY header: the TLVs as a Map of type to Buffer.
 * @param {import('../binding.js').ProxyInfo | null | undefined} info
 * @returns {import('../index.js').ProxyHeader | undefined}
 */
function proxyDetails(info) {
  if (info === null || info === undefined) return undefined
  /** @type {Map<number, Buffer>} */
  const tlvs = new Map()
  for (let i = 0; i < info.tlvTypes.length; i++) tlvs.set(info.tlvTypes[i], info.tlvValues[i])
  return {
    version: /** @type {1 | 2} */ (info.version),
    command: /** @type {'PROXY' | 'LOCAL'} */ (info.command),
    sourceAddress: info.sourceAddress ?? undefined,
    sourcePort: info.sourcePort ?? undefined,
    destinationAddress: info.destinationAddress ?? undefined,
    destinationPort: info.destinationPort ?? undefined,
    tlvs,
  }
}

class ListenSocket {
  #context
  #id
  #index
  #host
  #port
  #closed = false
  /** Its connections begin with a PROXY header (proxyProtocol). */
  #proxied = false
  /** The counts as they were when last read (what stays once the listener is closed). */
  #counts = { rejected: 0, dropped: 0 }

  /**
   * Listen sockets come from listen() and listenUnix() only (createListenSocket).
   * @param {symbol} token
   * @param {SocketContext} context
   * @param {number} id
   * @param {string} host
   * @param {number} port
   * @param {import('../binding.js').ListenOptionsInput} options
   */
  constructor(token, context, id, host, port, options) {
    if (token !== kConstructToken) throw new TypeError('ListenSocket is not constructible; use SocketContext.listen()')
    this.#proxied = options.proxyProtocol !== undefined
    this.#context = context
    this.#id = id
    this.#index = id % SLOT_INDEX_RANGE
    this.#host = host
    this.#port = port
    const contextState = context[kContextState]
    this[kStamp] = Math.floor(id / SLOT_INDEX_RANGE)
    contextState.state.handles[this.#index] = this
    contextState.listeners.add(this)
    contextState.state.hold()
  }

  get port() {
    return this.#port
  }

  get host() {
    return this.#host
  }

  get context() {
    return this.#context
  }

  get isClosed() {
    return this.#closed
  }

  #readCounts() {
    const { state } = this.#context[kContextState]
    if (!this.#closed && !state.closed) this.#counts = state.core.listenerCounts(this.#id) ?? this.#counts
    return this.#counts
  }

  /** Connections accepted and closed before onOpen; kept as it was when the listener closed. */
  get rejectedConnections() {
    return this.#readCounts().rejected
  }

  /** Connections closed at once for options.maxConnections; kept once the listener closed. */
  get droppedConnections() {
    return this.#readCounts().dropped
  }

  /** Stops accepting; the port is free when it returns. Open sockets stay. Idempotent. */
  close() {
    if (this.#closed) return
    this.#readCounts()
    this.#closed = true
    const contextState = this.#context[kContextState]
    contextState.listeners.delete(this)
    const { state } = contextState
    if (state.closed) return
    if (state.handles[this.#index] === this) state.handles[this.#index] = undefined
    state.core.closeListener(this.#id)
    state.release()
  }

  /**
   * A connection it accepted opened: a new Socket of its context, then onOpen.
   * @param {number} id
   * @param {Uint32Array} records
   * @param {number} at the Open record
   */
  [kAcceptConnection](id, records, at) {
    const socket = createSocket(this.#context, id, undefined, { proxied: this.#proxied })
    socket[kDispatch](EVENT_OPEN, 0, records, at)
  }

  /**
   * A TLS client asked for `name`, which no pattern of its context matches.
   * @param {string} name
   */
  [kServerNameRequested](name) {
    const context = this.#context
    context[kContextState].handlers.onServerName(context, name)
  }

  /** Its records are its context's business (accepts, names): none reach it here. */
  [kDispatch]() {}

  [kCloseByLoop]() {
    this.close()
  }
}

class Socket {
  #context
  #id
  #index
  #state
  #established = false
  #closed = false
  #shutDown = false
  #buffered = 0
  #remoteAddress = ''
  #localAddress = ''
  #remotePort = -1
  #localPort = -1
  /** Stamps of the armed timeout and long timeout (0: none), matched against expiries. */
  #timeoutStamp = 0
  #longTimeoutStamp = 0
  #paused = false
  #tls = false
  /** It connected (rather than was accepted or adopted): a STARTTLS upgrade makes it a TLS client. */
  #isClient = false
  /** The host it connected to: the name a STARTTLS client verifies without `servername`. */
  #host
  /**
   * STARTTLS, from upgrade() until the loop's Upgraded record: the bytes for the TLS session
   * (`head`, then Data the loop had read in clear that was not delivered); null otherwise.
   * @type {Buffer[] | null}
   */
  #upgradeInput = null
  /** STARTTLS: from upgrade() until the handshake completed (its onOpen). */
  #upgrading = false
  /**
   * What the TLS handshake settled ({ alpnProtocol, servername, peerCertificate }), once open.
   * @type {TlsSocketInfo | null}
   */
  #tlsInfo = null
  /** Accepted by a listener with proxyProtocol: `proxy` is read at Open. */
  #proxied = false
  /**
   * The PROXY header it began with, once open.
   * @type {import('../index.js').ProxyHeader | undefined}
   */
  #proxy = undefined
  /**
   * Data (Buffers), end (null) and the loop's close (its code) that arrived while paused, until
   * replayed after resume(); null when nothing is held.
   * @type {Array<Buffer | null | number> | null}
   */
  #heldBack = null
  #replayScheduled = false

  /**
   * Sockets come from connect() and accepts only (createSocket).
   * @param {symbol} token
   * @param {SocketContext} context
   * @param {number} id
   * @param {unknown} ext
   * @param {SocketOrigin} origin
   */
  constructor(token, context, id, ext, origin) {
    if (token !== kConstructToken) throw new TypeError('Socket is not constructible; use SocketContext.connect()')
    this.#proxied = origin.proxied ?? false
    this.#host = origin.host ?? ''
    /** @type {unknown} */
    this.ext = ext
    this.#context = context
    this.#id = id
    this.#index = id % SLOT_INDEX_RANGE
    const contextState = context[kContextState]
    const state = contextState.state
    this.#state = state
    this.#tls = contextState.tls !== null
    this[kStamp] = Math.floor(id / SLOT_INDEX_RANGE)
    state.handles[this.#index] = this
    contextState.sockets.add(this)
    state.hold()
  }

  get context() {
    return this.#context
  }

  get isClosed() {
    return this.#closed
  }

  get isShutDown() {
    return this.#shutDown
  }

  get isEstablished() {
    return this.#established && !this.#closed
  }

  get isTls() {
    return this.#tls
  }

  /** The PROXY protocol header the connection began with, or undefined. */
  get proxy() {
    return this.#proxy
  }

  get alpnProtocol() {
    return this.#tlsInfo?.alpnProtocol ?? undefined
  }

  get servername() {
    return this.#tlsInfo?.servername ?? undefined
  }

  get peerCertificate() {
    return this.#tlsInfo?.peerCertificate ?? undefined
  }

  /** 'TLSv1.3' or 'TLSv1.2' once the handshake completed; undefined before and for plain sockets. */
  get tlsVersion() {
    return this.#tlsInfo?.version ?? undefined
  }

  /** The negotiated cipher suite as node:tls's getCipher() describes it; undefined before the handshake. */
  get cipher() {
    const cipher = this.#tlsInfo?.cipher
    return cipher == null ? undefined : { name: cipher.name, standardName: cipher.standardName, version: cipher.version }
  }

  /** The handshake resumed an earlier session (a ticket or a session id). */
  get isSessionReused() {
    return this.#tlsInfo?.sessionReused ?? false
  }

  /**
   * RFC 5705 / RFC 8446 keying material, equal on both ends of the session. Asks the loop
   * thread, which holds the session, and waits for it (one wake-up).
   * @param {number} length
   * @param {string} label
   * @param {ArrayBufferView} [context]
   */
  exportKeyingMaterial(length, label, context) {
    validateInteger(length, 'length', 1, MAX_KEYING_MATERIAL_BYTES)
    if (typeof label !== 'string' || label === '') throw invalidArgType('label', 'a non-empty string', label)
    if (context !== undefined && !ArrayBuffer.isView(context)) {
      throw invalidArgType('context', 'a Buffer or TypedArray', context)
    }
    const contextBytes = context === undefined ? undefined : Buffer.from(context.buffer, context.byteOffset, context.byteLength)
    const material =
      this.#tlsInfo === null || this.#closed || this.#state.closed
        ? null
        : this.#state.core.exportKeyingMaterial(this.#id, length, Buffer.from(label, 'latin1'), contextBytes)
    if (material == null) {
      const message = 'exportKeyingMaterial needs a TLS socket whose handshake has completed and that is still open'
      throw withCode(new Error(message), 'ERR_TLS_INVALID_STATE')
    }
    return material
  }

  get remoteAddress() {
    return this.#remoteAddress
  }

  get localAddress() {
    return this.#localAddress
  }

  get remotePort() {
    return this.#remotePort
  }

  get localPort() {
    return this.#localPort
  }

  get fd() {
    return this.#closed ? -1 : this.#state.core.socketFd(this.#id)
  }

  get bufferedAmount() {
    // TLS writes queue too, and the loop thread drains them: ask for the current amount.
    if (this.#tls && !this.#closed && !this.#state.closed) return this.#state.core.bufferedAmount(this.#id)
    return this.#buffered
  }

  #writable() {
    return this.#established && !this.#closed && !this.#shutDown && !this.#state.closed
  }

  // TLS: write and write2 queue plaintext for the loop thread while bufferedAmount is below the
  // context's highWaterMark (the native side takes at most up to it); plain sockets write to
  // the kernel, never past data that send() buffered.

  /**
   * @param {string | ArrayBufferView} data
   * @param {boolean} [msgMore]
   */
  write(data, msgMore = false) {
    const bytes = bytesOf(data, 'data')
    if (typeof msgMore !== 'boolean') throw invalidArgType('msgMore', 'of type boolean', msgMore)
    if (!this.#writable() || (this.#buffered !== 0 && !this.#tls)) return 0
    return this.#state.core.write(this.#id, bytes, msgMore, this.#context[kContextState].highWaterMark)
  }

  /**
   * @param {string | ArrayBufferView} header
   * @param {string | ArrayBufferView} payload
   */
  write2(header, payload) {
    const headerBytes = bytesOf(header, 'header')
    const payloadBytes = bytesOf(payload, 'payload')
    if (!this.#writable() || (this.#buffered !== 0 && !this.#tls)) return 0
    return this.#state.core.write2(this.#id, headerBytes, payloadBytes, this.#context[kContextState].highWaterMark)
  }

  /** @param {string | ArrayBufferView} data */
  send(data) {
    const bytes = bytesOf(data, 'data')
    if (!this.#writable()) return false
    const highWaterMark = this.#context[kContextState].highWaterMark
    this.#buffered = this.#state.core.send(this.#id, bytes, highWaterMark)
    return this.#buffered < highWaterMark
  }

  flush() {
    if (this.#writable()) this.#state.core.flush(this.#id)
  }

  /** Sends FIN after the buffered data. The socket closes once the peer has finished too. */
  shutdown() {
    if (!this.#writable()) return
    this.#shutDown = true
    this.#state.core.shutdown(this.#id)
  }

  shutdownRead() {
    if (this.#established && !this.#closed && !this.#state.closed) this.#state.core.shutdownRead(this.#id)
  }

  /** @param {number} seconds */
  timeout(seconds) {
    validateInteger(seconds, 'seconds', 0, MAX_TIMEOUT_SECONDS)
    if (!this.#closed && !this.#state.closed) {
      this.#timeoutStamp = seconds === 0 ? 0 : this.#state.stamp()
      this.#state.core.setSocketTimeout(this.#id, seconds, false, !this.#established, this.#timeoutStamp)
    }
  }

  /** @param {number} minutes */
  longTimeout(minutes) {
    validateInteger(minutes, 'minutes', 0, MAX_LONG_TIMEOUT_MINUTES)
    if (!this.#closed && !this.#state.closed) {
      this.#longTimeoutStamp = minutes === 0 ? 0 : this.#state.stamp()
      this.#state.core.setSocketTimeout(this.#id, minutes * 60, true, !this.#established, this.#longTimeoutStamp)
    }
  }

  /**
   * TCP keep-alive (SO_KEEPALIVE) with probes after `initialDelaySeconds` of idleness
   * (TCP_KEEPIDLE, in seconds), every 10 s, 3 unanswered ones ending the connection (ETIMEDOUT).
   * Unix sockets and closed ones: nothing to do.
   * @param {boolean} enable
   * @param {number} [initialDelaySeconds]
   */
  setKeepAlive(enable, initialDelaySeconds = DEFAULT_KEEPALIVE_SECONDS) {
    if (typeof enable !== 'boolean') throw invalidArgType('enable', 'of type boolean', enable)
    validateKeepAliveDelay(initialDelaySeconds, 'initialDelaySeconds')
    if (!this.#closed && !this.#state.closed) this.#state.core.setKeepAlive(this.#id, enable ? initialDelaySeconds : 0)
    return this
  }

  /**
   * TCP_NODELAY (on from the start, as in uSockets). Unix sockets and closed ones: nothing to do.
   * @param {boolean} [noDelay]
   */
  setNoDelay(noDelay = true) {
    if (typeof noDelay !== 'boolean') throw invalidArgType('noDelay', 'of type boolean', noDelay)
    if (!this.#closed && !this.#state.closed) this.#state.core.setNoDelay(this.#id, noDelay)
    return this
  }

  /**
   * An abortive close (SO_LINGER 0): unsent data is dropped, the peer sees a reset. Like
   * close(), onClose runs before it returns.
   * @param {number} [code]
   * @param {unknown} [reason]
   */
  terminate(code = 0, reason = undefined) {
    validateInteger(code, 'code', -(2 ** 31), 2 ** 31 - 1)
    if (this.#closed || this.#state.closed) return
    const wasOpen = this.#established
    this.#forget()
    this.#state.core.terminateSocket(this.#id)
    if (wasOpen) this.#context[kContextState].handlers.onClose(this, code, reason)
  }

  /** For the specs: the kernel's keep-alive and Nagle options of a TCP socket. */
  [kTcpOptions]() {
    return this.#closed || this.#state.closed ? undefined : (this.#state.core.tcpOptions(this.#id) ?? undefined)
  }

  pause() {
    if (this.#closed || this.#state.closed || this.#paused) return
    this.#paused = true
    this.#heldBack ??= []
    this.#state.core.pause(this.#id, true)
  }

  resume() {
    if (this.#closed || this.#state.closed || !this.#paused) return
    this.#paused = false
    this.#state.core.pause(this.#id, false)
    // What the loop read before it saw the pause is delivered first, right after the caller
    // returns; until then, data of this socket still dispatched queues behind it.
    if (!this.#replayScheduled) {
      this.#replayScheduled = true
      queueMicrotask(() => this.#replay())
    }
  }

  /** Delivers data / end that arrived while paused, in order, until paused again or closed. */
  #replay() {
    this.#replayScheduled = false
    const events = this.#heldBack
    while (events !== null && events.length > 0 && !this.#paused && !this.#closed) {
      const data = events.shift()
      try {
        if (data === null) this.#ended()
        else if (typeof data === 'number') this.#closedByLoop(data)
        else this.#context[kContextState].handlers.onData(this, /** @type {Buffer} */ (data))
      } catch (err) {
        reportUncaught(err)
      }
    }
    if (!this.#paused) this.#heldBack = null
  }

  /**
   * The loop closed the socket: 0 when both sides finished, else the errno.
   * @param {number} code
   */
  #closedByLoop(code) {
    this.#forget()
    this.#state.core.releaseSocket(this.#id)
    const syscall = code === ERRNO_EPIPE ? 'write' : 'read'
    this.#context[kContextState].handlers.onClose(this, code, code === 0 ? undefined : socketError(code, syscall))
  }

  #ended() {
    const handlers = this.#context[kContextState].handlers
    if (handlers.onEnd === null) this.close()
    else handlers.onEnd(this)
  }

  /**
   * Closes the socket: onClose(socket, code, reason) runs before this returns. On a connecting
   * socket it cancels the connect and nothing fires. On a closed socket it does nothing.
   * @param {number} [code]
   * @param {unknown} [reason]
   */
  close(code = 0, reason = undefined) {
    validateInteger(code, 'code', -(2 ** 31), 2 ** 31 - 1)
    if (this.#closed || this.#state.closed) return
    const wasOpen = this.#established
    this.#forget()
    this.#state.core.closeSocket(this.#id)
    if (wasOpen) this.#context[kContextState].handlers.onClose(this, code, reason)
  }

  /** Marks it closed and gives up its place in the loop's table, its context and its hold. */
  #forget() {
    this.#closed = true
    const state = this.#state
    if (state.handles[this.#index] === this) state.handles[this.#index] = undefined
    this.#context[kContextState].sockets.delete(this)
    if (!state.closed) state.release()
  }

  /**
   * Moves it to `context` (adoptSocket): later events reach its handlers; timeouts off.
   * @param {SocketContext} context
   */
  [kMoveToContext](context) {
    if (this.#closed) return
    this.#moveTo(context)
    this.#state.core.setSocketTimeout(this.#id, 0, false, false, 0)
    this.#state.core.setSocketTimeout(this.#id, 0, true, false, 0)
  }

  /**
   * Its handlers are `context`'s from now on; expiries of its timeouts are dropped.
   * @param {SocketContext} context
   */
  #moveTo(context) {
    this.#context[kContextState].sockets.delete(this)
    this.#context = context
    context[kContextState].sockets.add(this)
    this.#timeoutStamp = 0
    this.#longTimeoutStamp = 0
  }

  /**
   * STARTTLS (SocketContext.upgrade checked the socket): it becomes a TLS socket of `context`,
   * a client if it connected (verifying `servername`, else the host it connected to), else a
   * server. The native upgrade throws before anything changes. Data of it that the loop read
   * but JavaScript has not delivered is the TLS session's, behind `head`: what pause() held
   * back now, and what its Data records bring until the loop's Upgraded record.
   * @param {SocketContext} context
   * @param {string | undefined} servername
   * @param {Buffer | undefined} head
   */
  [kUpgrade](context, servername, head) {
    const tls = /** @type {import('../binding.js').TlsContextCore} */ (context[kContextState].tls)
    // The loop replaces its timeouts by the handshake timeout as it applies the upgrade.
    this.#state.core.upgrade(this.#id, tls, this.#isClient, servername ?? this.#host)
    this.#moveTo(context)
    this.#tls = true
    this.#upgrading = true
    /** @type {Buffer[]} */
    const input = head === undefined || head.length === 0 ? [] : [head]
    if (this.#heldBack !== null) {
      // Its end cannot be delivered as plaintext either (the loop closes a socket whose peer
      // finished before its handshake); a close the loop reported stays held until resume().
      for (const held of this.#heldBack) if (held !== null && typeof held !== 'number') input.push(held)
      this.#heldBack = this.#heldBack.filter((held) => typeof held === 'number')
    }
    this.#upgradeInput = input
  }

  /**
   * @param {number} kind
   * @param {number} arg
   * @param {Uint32Array} records
   * @param {number} at
   */
  [kDispatch](kind, arg, records, at) {
    const context = this.#context[kContextState]
    const handlers = context.handlers
    switch (kind) {
      case EVENT_DATA: {
        const data = dataOf(records, at, arg)
        this.#state.handedOut(context.borrowData)
        if (this.#upgradeInput === null && this.#heldBack === null) {
          handlers.onData(this, data)
          break
        }
        // Read in clear after upgrade() was called: the TLS session's. Read before the loop
        // saw pause(): held until resume(). Either is at most what the loop may hold
        // undelivered (maxPendingBytes), and outlives this batch: a copy if the batch's memory
        // goes back to the loop after its dispatch (borrowData).
        const kept = context.borrowData ? Buffer.from(data) : data
        if (this.#upgradeInput !== null) this.#upgradeInput.push(kept)
        else this.#heldBack?.push(kept)
        break
      }
      case EVENT_UPGRADED: {
        const input = this.#upgradeInput ?? []
        this.#upgradeInput = null
        this.#state.core.upgradeInput(this.#id, input.length === 1 ? input[0] : Buffer.concat(input))
        break
      }
      case EVENT_OPEN: {
        if (this.#upgrading) {
          // STARTTLS: the handshake completed; the addresses are the ones it opened with.
          this.#upgrading = false
          this.#tlsInfo = this.#state.core.tlsInfo(this.#id) ?? null
          handlers.onOpen(this, this.#isClient, this.#remoteAddress)
          break
        }
        const opened = openedAddresses(records, at)
        this.#remoteAddress = opened.remoteAddress
        this.#localAddress = opened.localAddress
        this.#remotePort = opened.remotePort
        this.#localPort = opened.localPort
        this.#established = true
        this.#isClient = openedByConnect(records, at)
        if (this.#tls) this.#tlsInfo = this.#state.core.tlsInfo(this.#id) ?? null
        if (this.#proxied) this.#proxy = proxyDetails(this.#state.core.proxyInfo(this.#id))
        const { keepAliveSeconds } = this.#context[kContextState]
        if (keepAliveSeconds > 0 && this.#remotePort !== -1) this.#state.core.setKeepAlive(this.#id, keepAliveSeconds)
        handlers.onOpen(this, openedByConnect(records, at), opened.remoteAddress)
        break
      }
      case EVENT_WRITABLE:
        this.#buffered = this.#state.core.bufferedAmount(this.#id)
        handlers.onWritable(this)
        break
      case EVENT_END:
        // Before the Upgraded record: the loop closes the socket (its handshake cannot finish).
        if (this.#upgradeInput !== null) break
        if (this.#heldBack !== null) this.#heldBack.push(null)
        else this.#ended()
        break
      // An expiry of an arming that a later timeout() (or adoptSocket) replaced is dropped.
      case EVENT_TIMEOUT:
        if (arg !== this.#timeoutStamp || arg === 0) break
        this.#timeoutStamp = 0
        handlers.onTimeout(this)
        break
      case EVENT_LONG_TIMEOUT:
        if (arg !== this.#longTimeoutStamp || arg === 0) break
        this.#longTimeoutStamp = 0
        handlers.onLongTimeout(this)
        break
      case EVENT_CLOSE:
        // Data held back by pause() comes first: the close waits behind it until resume().
        if (this.#heldBack !== null) this.#heldBack.push(arg | 0)
        else this.#closedByLoop(arg | 0)
        break
      case EVENT_CONNECT_ERROR: {
        this.#forget()
        this.#state.core.releaseSocket(this.#id)
        const code = arg | 0
        handlers.onConnectError(this, code, socketError(code, 'connect'))
        break
      }
    }
  }

  /**
   * Its TLS handshake (an upgraded or adopted server socket) met a name no pattern of its
   * context matches.
   * @param {string} name
   */
  [kServerNameRequested](name) {
    const context = this.#context
    context[kContextState].handlers.onServerName(context, name)
  }

  /** Closing the context or the loop: open sockets get onClose, connecting ones ECANCELED. */
  [kCloseByLoop]() {
    if (this.#closed) return
    if (this.#established) {
      this.close()
      return
    }
    const loopClosed = this.#state.closed
    this.#forget()
    if (!loopClosed) this.#state.core.closeSocket(this.#id)
    this.#context[kContextState].handlers.onConnectError(this, ERRNO_ECANCELED, systemError(ERRNO_ECANCELED, 'connect'))
  }
}

/**
 * A new ListenSocket in `context`'s loop's handle table (listen(), listenUnix()).
 * @param {SocketContext} context
 * @param {number} id
 * @param {string} host
 * @param {number} port
 * @param {import('../binding.js').ListenOptionsInput} options
 */
function createListenSocket(context, id, host, port, options) {
  return new ListenSocket(kConstructToken, context, id, host, port, options)
}

/**
 * Where a socket came from.
 * @typedef {object} SocketOrigin
 * @property {boolean} [proxied] accepted by a listener with proxyProtocol
 * @property {string} [host] the host it connects to
 */

/**
 * A new Socket in `context`'s loop's handle table (connect(), connectUnix(), an accept).
 * @param {SocketContext} context
 * @param {number} id
 * @param {unknown} ext
 * @param {SocketOrigin} [origin]
 */
function createSocket(context, id, ext, origin = {}) {
  return new Socket(kConstructToken, context, id, ext, origin)
}

module.exports = {
  ListenSocket,
  Socket,
  createListenSocket,
  createSocket,
  DEFAULT_KEEPALIVE_SECONDS,
  validateKeepAliveDelay,
}
