// @ts-check
// UdpSocket (`us_udp_socket`): a bound UDP socket on a loop. Datagrams arrive as EVENT_DATAGRAM
// records (read with recvmmsg, many per syscall, straight into the event batch) and reach
// onData one by one; send() goes from this thread to the kernel.
'use strict'

const { isIP } = require('node:net')

const {
  EVENT_DATAGRAM,
  EVENT_WRITABLE,
  DATAGRAM_PORT,
  DATAGRAM_ADDRESS_LENGTH,
  DATAGRAM_ADDRESS,
  SLOT_INDEX_RANGE,
  WORDS_PER_EVENT,
} = require('../binding.js')
const { kState, kStamp, kDispatch, kCloseByLoop } = require('./symbols.js')
const {
  invalidArgType,
  invalidArgValue,
  outOfRange,
  validateFunction,
  validateInteger,
  validateNoNul,
  validateOptions,
  bytesOf,
} = require('./validate.js')
const { loopArgument } = require('./loop.js')

/** The largest UDP payload over IPv4 (65,535 - 20 bytes of IP header - 8 of UDP header). */
const MAX_IPV4_DATAGRAM = 65_507
/** Over IPv6, whose 40-byte header is not counted in its payload length. */
const MAX_IPV6_DATAGRAM = 65_527

/**
 * @typedef {import('./loop.js').LoopState} LoopState
 * @typedef {(socket: UdpSocket, data: Buffer, port: number, address: string) => void} DataHandler
 * @typedef {(socket: UdpSocket) => void} DrainHandler
 */

class UdpSocket {
  /** @type {LoopState} */
  #state
  #id
  #index
  #address
  #port
  #closed = false
  /** @type {DataHandler} */
  #onData
  /** @type {DrainHandler | undefined} */
  #onDrain
  /** The count as it was when last read (what stays once the socket is closed). */
  #dropped = 0

  /**
   * @param {import('./loop.js').Loop | null | undefined} loop
   * @param {import('../index.js').UdpSocketOptions} options
   */
  constructor(loop, options) {
    const udpLoop = loopArgument(loop)
    if (options === undefined) throw invalidArgType('options', 'of type object', options)
    const { host, port = 0, exclusive = false, ipv6Only = false, onData, onDrain } = validateOptions(options, 'options')
    if (host !== null && host !== undefined && typeof host !== 'string') {
      throw invalidArgType('options.host', 'of type string or null', host)
    }
    if (typeof host === 'string') validateNoNul(host, 'options.host')
    validateInteger(port, 'options.port', 0, 65535)
    if (typeof exclusive !== 'boolean') throw invalidArgType('options.exclusive', 'of type boolean', exclusive)
    if (typeof ipv6Only !== 'boolean') throw invalidArgType('options.ipv6Only', 'of type boolean', ipv6Only)
    validateFunction(onData, 'options.onData')
    if (onDrain !== undefined) validateFunction(onDrain, 'options.onDrain')
    const state = udpLoop[kState]
    state.checkOpen()
    const bound = state.core.udpBind(host ?? null, port, exclusive, ipv6Only)
    this.#state = state
    this.#id = bound.id
    this.#index = bound.id % SLOT_INDEX_RANGE
    this.#address = bound.address
    this.#port = bound.port
    this.#onData = /** @type {DataHandler} */ (onData)
    this.#onDrain = /** @type {DrainHandler | undefined} */ (onDrain)
    /** @type {unknown} */
    this.ext = undefined
    this[kStamp] = Math.floor(bound.id / SLOT_INDEX_RANGE)
    state.handles[this.#index] = this
    state.hold()
  }

  /** The bound port. */
  get port() {
    return this.#port
  }

  /** The bound address (`'::'` for a dual-stack socket). */
  get address() {
    return this.#address
  }

  get isClosed() {
    return this.#closed
  }

  /** Datagrams the kernel dropped because the receive buffer was full; kept once closed. */
  get receivedDropped() {
    this.#readDropped()
    return this.#dropped
  }

  #readDropped() {
    if (!this.#closed && !this.#state.closed) this.#dropped = this.#state.core.udpReceivedDropped(this.#id)
  }

  /**
   * Sends one datagram; false when the kernel cannot take it now (it was not sent: onDrain
   * follows) or the socket is closed.
   * @param {string | ArrayBufferView} data
   * @param {number} port
   * @param {string} address
   */
  send(data, port, address) {
    const bytes = bytesOf(data, 'data')
    validateInteger(port, 'port', 1, 65535)
    if (typeof address !== 'string') throw invalidArgType('address', 'of type string', address)
    const family = isIP(address)
    if (family === 0) throw invalidArgValue('address', 'must be an IP address (names are not resolved)', address)
    const max = family === 4 ? MAX_IPV4_DATAGRAM : MAX_IPV6_DATAGRAM
    if (bytes.byteLength > max) throw outOfRange('data', `at most ${max} bytes for an IPv${family} address`, `${bytes.byteLength} bytes`)
    if (this.#closed || this.#state.closed) return false
    return this.#state.core.udpSend(this.#id, bytes, port, address)
  }

  /** Closes the socket; its port is free when it returns. Idempotent. */
  close() {
    if (this.#closed) return
    this.#readDropped()
    this.#closed = true
    const state = this.#state
    if (state.closed) return
    if (state.handles[this.#index] === this) state.handles[this.#index] = undefined
    state.core.udpClose(this.#id)
    state.release()
  }

  /**
   * @param {number} kind
   * @param {number} arg
   * @param {Uint32Array} records
   * @param {number} at
   */
  [kDispatch](kind, arg, records, at) {
    if (this.#closed) return
    if (kind === EVENT_DATAGRAM) {
      const payload = at + WORDS_PER_EVENT
      const port = records[payload + DATAGRAM_PORT]
      const addressLength = records[payload + DATAGRAM_ADDRESS_LENGTH]
      const start = records.byteOffset + (payload + DATAGRAM_ADDRESS) * 4
      const address = Buffer.from(records.buffer, start, addressLength).toString('latin1')
      const dataLength = arg - DATAGRAM_ADDRESS * 4 - addressLength
      this.#onData(this, Buffer.from(records.buffer, start + addressLength, dataLength), port, address)
    } else if (kind === EVENT_WRITABLE) {
      this.#onDrain?.(this)
    }
  }

  [kCloseByLoop]() {
    this.close()
  }
}

module.exports = { UdpSocket }
