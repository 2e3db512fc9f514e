// @ts-check
// SocketContext: the handlers, TLS configuration and write limit that a group of sockets and
// listen sockets share, and the calls that make them (listen, connect, adoptSocket).
'use strict'

const { TlsContextCore } = require('../binding.js')
const { kState, kContextState, kCloseByLoop, kMoveToContext, kUpgrade, hideInternal } = require('./symbols.js')
const { withCode, tlsOnly } = require('./errors.js')
const {
  invalidArgType,
  validateFunction,
  validateInteger,
  validateNoNul,
  validateOptions,
  validateUnixPath,
} = require('./validate.js')
const { tlsArgument, serverNameKey } = require('./tls-options.js')
const { loopArgument } = require('./loop.js')
const { Socket, createListenSocket, createSocket, DEFAULT_KEEPALIVE_SECONDS, validateKeepAliveDelay } = require('./socket.js')

/**
 * @typedef {import('./loop.js').Loop} Loop
 * @typedef {import('./loop.js').LoopState} LoopState
 * @typedef {import('./socket.js').ListenSocket} ListenSocket
 * @typedef {import('../index.js').SocketError} SocketError
 */

const LISTEN_DEFAULT = 0
const LISTEN_EXCLUSIVE_PORT = 1
const DEFAULT_HIGH_WATER_MARK = 64 * 1024

const MAX_BACKLOG = 2 ** 31 - 1
/** Descriptors are C ints. */
const MAX_FD = 2 ** 31 - 1

function noop() {}

/**
 * `listen`'s options as the binding takes them: LISTEN_DEFAULT / LISTEN_EXCLUSIVE_PORT, or an
 * object of them.
 * @param {number | import('../index.js').ListenOptions} options
 * @returns {import('../binding.js').ListenOptionsInput}
 */
function listenOptions(options) {
  if (typeof options === 'number') {
    validateInteger(options, 'options', LISTEN_DEFAULT, LISTEN_EXCLUSIVE_PORT)
    return { exclusive: options === LISTEN_EXCLUSIVE_PORT, ipv6Only: false }
  }
  if (options === null || typeof options !== 'object') {
    throw invalidArgType('options', 'LISTEN_DEFAULT, LISTEN_EXCLUSIVE_PORT or an object', options)
  }
  /** @type {{ [K in keyof import('../index.js').ListenOptions]?: unknown }} */
  const { exclusive = false, ipv6Only = false, backlog, maxConnections, proxyProtocol = false } = options
  if (typeof exclusive !== 'boolean') throw invalidArgType('options.exclusive', 'of type boolean', exclusive)
  if (typeof ipv6Only !== 'boolean') throw invalidArgType('options.ipv6Only', 'of type boolean', ipv6Only)
  if (backlog !== undefined) validateInteger(backlog, 'options.backlog', 1, MAX_BACKLOG)
  if (maxConnections !== undefined) validateInteger(maxConnections, 'options.maxConnections', 1, 2 ** 32 - 1)
  if (proxyProtocol !== true && proxyProtocol !== false && proxyProtocol !== 'optional') {
    throw invalidArgType('options.proxyProtocol', "true, false or 'optional'", proxyProtocol)
  }
  const proxy = proxyProtocol === 'optional' ? 'optional' : proxyProtocol ? 'required' : undefined
  return { exclusive, ipv6Only, backlog, maxConnections, proxyProtocol: proxy }
}

/**
 * The context option `keepAlive` (true, false, or { initialDelaySeconds }) in seconds, 0 for off.
 * @param {unknown} keepAlive
 */
function keepAliveOption(keepAlive) {
  if (keepAlive === undefined || keepAlive === false) return 0
  if (keepAlive === true) return DEFAULT_KEEPALIVE_SECONDS
  const { initialDelaySeconds = DEFAULT_KEEPALIVE_SECONDS } = validateOptions(
    /** @type {{ initialDelaySeconds?: number }} */ (keepAlive),
    'options.keepAlive',
  )
  return validateKeepAliveDelay(initialDelaySeconds, 'options.keepAlive.initialDelaySeconds')
}

/**
 * A context's handlers (set by onOpen(), onData(), ...).
 * @typedef {object} Handlers
 * @property {(socket: Socket, isClient: boolean, remoteAddress: string) => void} onOpen
 * @property {(socket: Socket, data: Buffer) => void} onData
 * @property {(socket: Socket) => void} onWritable
 * @property {((socket: Socket) => void) | null} onEnd null: the socket closes when the peer finishes
 * @property {(socket: Socket) => void} onTimeout
 * @property {(socket: Socket) => void} onLongTimeout
 * @property {(socket: Socket, code: number, reason: unknown) => void} onClose
 * @property {(socket: Socket, code: number, error: SocketError) => void} onConnectError
 * @property {(context: SocketContext, hostname: string) => void} onServerName
 */

/** @type {Handlers} */
const DEFAULT_HANDLERS = {
  onOpen: noop,
  onData: noop,
  onWritable: noop,
  // Without an onEnd handler a socket whose peer finished is closed (API.md).
  onEnd: null,
  onTimeout: noop,
  onLongTimeout: noop,
  onClose: noop,
  onConnectError: noop,
  onServerName: noop,
}

/**
 * What a SocketContext shares with its sockets and listen sockets.
 * @typedef {object} ContextState
 * @property {Loop} loop
 * @property {LoopState} state
 * @property {number} highWaterMark
 * @property {number} keepAliveSeconds TCP keep-alive delay for every socket it opens, 0 for none.
 * @property {boolean} borrowData onData's Buffer is valid only until the handler returns.
 * @property {TlsContextCore | null} tls The TLS configuration (shared with children), or null for plain TCP / Unix.
 * @property {Map<string, unknown>} serverNames SNI pattern -> ext, shared with children like the configuration.
 * @property {Handlers} handlers
 * @property {Set<Socket>} sockets
 * @property {Set<ListenSocket>} listeners
 */

class SocketContext {
  /**
   * @param {Loop | null} [loop]
   * @param {import('../index.js').SocketContextOptions} [options]
   */
  constructor(loop, options) {
    const contextLoop = loopArgument(loop)
    const { tls, highWaterMark = DEFAULT_HIGH_WATER_MARK, keepAlive, borrowData = false } = validateOptions(options, 'options')
    validateInteger(highWaterMark, 'options.highWaterMark', 1, 2 ** 32)
    if (typeof borrowData !== 'boolean') throw invalidArgType('options.borrowData', 'of type boolean', borrowData)
    const keepAliveSeconds = keepAliveOption(keepAlive)
    const state = contextLoop[kState]
    state.checkOpen()
    const tlsCore = tls === undefined || tls === null ? null : new TlsContextCore(tlsArgument(tls, 'options.tls'))
    /** @type {unknown} */
    this.ext = undefined
    /** @type {ContextState} */
    this[kContextState] = {
      loop: contextLoop,
      state,
      highWaterMark,
      keepAliveSeconds,
      borrowData,
      tls: tlsCore,
      serverNames: new Map(),
      handlers: { ...DEFAULT_HANDLERS },
      sockets: new Set(),
      listeners: new Set(),
    }
    hideInternal(this, kContextState)
  }

  get loop() {
    return this[kContextState].loop
  }

  get isTls() {
    return this[kContextState].tls !== null
  }

  /**
   * @template {keyof Handlers} K
   * @param {K} name
   * @param {Handlers[K]} callback
   */
  #handler(name, callback) {
    validateFunction(callback, 'callback')
    this[kContextState].handlers[name] = callback
    return this
  }

  /** @param {Handlers['onOpen']} callback */
  onOpen(callback) {
    return this.#handler('onOpen', callback)
  }

  /** @param {Handlers['onData']} callback */
  onData(callback) {
    return this.#handler('onData', callback)
  }

  /** @param {Handlers['onWritable']} callback */
  onWritable(callback) {
    return this.#handler('onWritable', callback)
  }

  /** @param {(socket: Socket) => void} callback */
  onEnd(callback) {
    return this.#handler('onEnd', callback)
  }

  /** @param {Handlers['onTimeout']} callback */
  onTimeout(callback) {
    return this.#handler('onTimeout', callback)
  }

  /** @param {Handlers['onLongTimeout']} callback */
  onLongTimeout(callback) {
    return this.#handler('onLongTimeout', callback)
  }

  /** @param {Handlers['onClose']} callback */
  onClose(callback) {
    return this.#handler('onClose', callback)
  }

  /** @param {Handlers['onConnectError']} callback */
  onConnectError(callback) {
    return this.#handler('onConnectError', callback)
  }

  /**
   * TLS servers: names no addServerName pattern matches are asked about from now on.
   * @param {Handlers['onServerName']} callback
   */
  onServerName(callback) {
    this.#handler('onServerName', callback)
    this[kContextState].tls?.setAsksForNames(true)
    return this
  }

  /**
   * @param {string | null | undefined} host
   * @param {number} port
   * @param {number | import('../index.js').ListenOptions} [options]
   */
  listen(host, port, options = LISTEN_DEFAULT) {
    if (host !== null && host !== undefined && typeof host !== 'string') {
      throw invalidArgType('host', 'of type string or null', host)
    }
    if (typeof host === 'string') validateNoNul(host, 'host')
    validateInteger(port, 'port', 0, 65535)
    const binding = listenOptions(options)
    const context = this[kContextState]
    context.state.checkOpen()
    const id = context.state.core.listen(host ?? null, port, binding, context.tls)
    return createListenSocket(this, id, host ?? '', context.state.core.listenerPort(id), binding)
  }

  /**
   * Of the options, `exclusive` and `ipv6Only` mean nothing for a path.
   * @param {string} path
   * @param {number | import('../index.js').ListenOptions} [options]
   */
  listenUnix(path, options = LISTEN_DEFAULT) {
    validateUnixPath(path)
    const binding = listenOptions(options)
    const context = this[kContextState]
    context.state.checkOpen()
    return createListenSocket(this, context.state.core.listenUnix(path, binding, context.tls), path, -1, binding)
  }

  /**
   * Listens on an inherited listening descriptor (systemd's LISTEN_FDS, a parent's), which the
   * listen socket then owns. Of the options, `exclusive` and `ipv6Only` cannot apply (it is
   * bound already).
   * @param {number} fd
   * @param {number | import('../index.js').ListenOptions} [options]
   */
  listenFd(fd, options = LISTEN_DEFAULT) {
    validateInteger(fd, 'fd', 0, MAX_FD)
    const binding = listenOptions(options)
    if (binding.exclusive || binding.ipv6Only) {
      const message = 'listenFd: options.exclusive and options.ipv6Only do not apply to a listener that is bound already'
      throw withCode(new Error(message), 'ERR_INVALID_ARG_VALUE')
    }
    const context = this[kContextState]
    context.state.checkOpen()
    const { core } = context.state
    const id = core.listenFd(fd, binding, context.tls)
    return createListenSocket(this, id, core.listenerHost(id) ?? '', core.listenerPort(id), binding)
  }

  /**
   * Takes over an inherited connected descriptor as if this context's listener had accepted
   * it (a TLS context handshakes as the server); onOpen follows.
   * @param {number} fd
   * @param {{ ext?: unknown }} [options]
   */
  adoptFd(fd, options) {
    validateInteger(fd, 'fd', 0, MAX_FD)
    const { ext } = validateOptions(options, 'options')
    const context = this[kContextState]
    context.state.checkOpen()
    return createSocket(this, context.state.core.adoptFd(fd, context.tls), ext)
  }

  /**
   * @param {string} host
   * @param {number} port
   * @param {import('../index.js').ConnectOptions} [options]
   */
  connect(host, port, options) {
    if (typeof host !== 'string' || host === '') throw invalidArgType('host', 'a non-empty string', host)
    validateNoNul(host, 'host')
    validateInteger(port, 'port', 1, 65535)
    const { sourceHost, ext } = validateOptions(options, 'options')
    if (sourceHost !== undefined && sourceHost !== null && typeof sourceHost !== 'string') {
      throw invalidArgType('options.sourceHost', 'of type string', sourceHost)
    }
    if (typeof sourceHost === 'string') validateNoNul(sourceHost, 'options.sourceHost')
    const context = this[kContextState]
    context.state.checkOpen()
    const id = context.state.core.connect(host, port, sourceHost ?? null, context.tls)
    return createSocket(this, id, ext, { host })
  }

  /**
   * @param {string} path
   * @param {{ ext?: unknown }} [options]
   */
  connectUnix(path, options) {
    validateUnixPath(path)
    const { ext } = validateOptions(options, 'options')
    const context = this[kContextState]
    context.state.checkOpen()
    // Over TLS (now or after upgrade()) a Unix socket's server is verified as `localhost`
    // unless tls.servername says otherwise.
    return createSocket(this, context.state.core.connectUnix(path, context.tls), ext, { host: 'localhost' })
  }

  /**
   * Moves a socket here: later events reach this context's handlers; no onOpen; timeouts off.
   * @param {Socket} socket
   */
  adoptSocket(socket) {
    if (!(socket instanceof Socket)) throw invalidArgType('socket', 'an instance of Socket', socket)
    if (socket.context.loop !== this.loop) {
      throw withCode(new Error('adoptSocket: the socket belongs to another loop'), 'ERR_INVALID_ARG_VALUE')
    }
    if (socket.isTls !== this.isTls) {
      const message = `adoptSocket: a ${socket.isTls ? 'TLS' : 'plain'} socket cannot move to a ${this.isTls ? 'TLS' : 'plain'} context`
      throw withCode(new Error(message), 'ERR_INVALID_ARG_VALUE')
    }
    socket[kMoveToContext](this)
    return socket
  }

  /**
   * STARTTLS: `socket`, an open plain socket of this loop, becomes a TLS socket of this context
   * (its handlers from now on): a client if it connected, a server if it was accepted or
   * adopted. Bytes written before go out in clear first; bytes read after the last onData
   * before this call go to the TLS session (behind `head`), never to onData. onOpen of this
   * context follows when the handshake completed; onClose with the TLS error if it failed.
   * @param {Socket} socket
   * @param {{ servername?: string, head?: ArrayBufferView }} [options]
   */
  upgrade(socket, options) {
    if (!(socket instanceof Socket)) throw invalidArgType('socket', 'an instance of Socket', socket)
    const { servername, head } = validateOptions(options, 'options')
    if (servername !== undefined && servername !== null) {
      if (typeof servername !== 'string' || servername === '') {
        throw invalidArgType('options.servername', 'a non-empty string', servername)
      }
      validateNoNul(servername, 'options.servername')
    }
    if (head !== undefined && head !== null && !ArrayBuffer.isView(head)) {
      throw invalidArgType('options.head', 'a Buffer or TypedArray', head)
    }
    const context = this[kContextState]
    if (context.tls === null) throw tlsOnly('upgrade')
    /** @param {string} why */
    const refuse = (why) => withCode(new Error(`upgrade: the socket ${why}`), 'ERR_INVALID_ARG_VALUE')
    if (socket.context.loop !== this.loop) throw refuse('belongs to another loop')
    if (socket.isTls) throw refuse('is a TLS socket already')
    if (socket.isClosed) throw refuse('is closed')
    if (!socket.isEstablished) throw refuse('is not open yet (still connecting)')
    if (socket.isShutDown) throw refuse('is shut down (it cannot send its side of the handshake)')
    context.state.checkOpen()
    // A copy: the session reads it once the loop applied the upgrade, after this dispatch, and
    // the caller may reuse its memory (or lend it: onData's Buffer with borrowData).
    const headBytes = head == null ? undefined : Buffer.from(new Uint8Array(head.buffer, head.byteOffset, head.byteLength))
    socket[kUpgrade](this, servername ?? undefined, headBytes)
    return socket
  }

  /**
   * Certificate rotation: handshakes that start from now on use `options` (key, certificate,
   * CA and the rest of TlsOptions), here and in the contexts that share this one's
   * configuration (createChild); open sockets keep theirs. Invalid options throw and change
   * nothing. Server names (addServerName) keep their entries: add a pattern again to rotate it.
   * Session caches and ticket keys carry over (tls.ticketKeys replaces the ticket key; tickets
   * under the previous one still resume).
   * @param {import('../index.js').TlsOptions} options
   */
  setTls(options) {
    const context = this[kContextState]
    const tls = tlsArgument(options, 'options')
    if (context.tls === null) throw tlsOnly('setTls')
    context.tls.setOptions(tls)
  }

  /**
   * The seed's name for adoptSocket.
   * @param {Socket} socket
   */
  link(socket) {
    return this.adoptSocket(socket)
  }

  /**
   * Same loop and TLS configuration (with its server names), own handlers.
   * @param {import('../index.js').SocketContextOptions} [options]
   */
  createChild(options) {
    const parent = this[kContextState]
    const inherited = parent.keepAliveSeconds > 0 && { initialDelaySeconds: parent.keepAliveSeconds }
    const {
      highWaterMark = parent.highWaterMark,
      keepAlive = inherited,
      borrowData = parent.borrowData,
    } = validateOptions(options, 'options')
    const child = new SocketContext(this.loop, {
      highWaterMark: /** @type {number} */ (highWaterMark),
      keepAlive: /** @type {import('../index.js').SocketContextOptions['keepAlive']} */ (keepAlive),
      borrowData: /** @type {boolean} */ (borrowData),
    })
    child[kContextState].tls = this[kContextState].tls
    child[kContextState].serverNames = this[kContextState].serverNames
    return child
  }

  /**
   * SNI: clients asking for names matching `pattern` get the key and certificate of `tls`.
   * @param {string} pattern
   * @param {import('../index.js').TlsOptions} tls
   * @param {unknown} [ext]
   */
  addServerName(pattern, tls, ext) {
    const context = this[kContextState]
    if (typeof pattern !== 'string' || pattern === '') throw invalidArgType('pattern', 'a non-empty string', pattern)
    if (context.tls === null) throw tlsOnly('addServerName')
    context.tls.addServerName(pattern, tlsArgument(tls, 'tls'))
    context.serverNames.set(serverNameKey(pattern), ext)
  }

  /** @param {string} pattern */
  removeServerName(pattern) {
    const context = this[kContextState]
    if (typeof pattern !== 'string') throw invalidArgType('pattern', 'of type string', pattern)
    if (context.tls === null) throw tlsOnly('removeServerName')
    context.tls.removeServerName(pattern)
    context.serverNames.delete(serverNameKey(pattern))
  }

  /**
   * The ext of the entry that serves `name` (a pattern finds its own entry).
   * @param {string} name
   */
  findServerNameExt(name) {
    const context = this[kContextState]
    if (typeof name !== 'string') throw invalidArgType('name', 'of type string', name)
    const pattern = context.tls?.findServerName(name)
    return pattern == null ? undefined : context.serverNames.get(pattern)
  }

  /** Closes the listen sockets, then every socket (onClose fires for each before returning). */
  close() {
    const context = this[kContextState]
    for (const listener of [...context.listeners]) listener.close()
    for (const socket of [...context.sockets]) socket[kCloseByLoop]()
  }
}

module.exports = { SocketContext, LISTEN_DEFAULT, LISTEN_EXCLUSIVE_PORT }
