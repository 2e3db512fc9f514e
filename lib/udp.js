// @ts-check
// UdpSocket (`us_udp_socket`): a bound UDP socket on a loop. Datagrams arrive as EVENT_DATAGRAM
// records (read with recvmmsg, many per syscall, straight into the event batch) and reach
// onData one by one; send() goes from this thread to the kernel: at once, or (while the loop
// dispatches a batch) in one sendmmsg with the others sent during that batch.
'use strict'

const { isIP } = require('node:net')

const {
  EVENT_DATAGRAM,
  EVENT_DATAGRAM_ERROR,
  EVENT_WRITABLE,
  DATAGRAM_PORT,
  DATAGRAM_ADDRESS_LENGTH,
  DATAGRAM_ADDRESS,
  SLOT_INDEX_RANGE,
  WORDS_PER_EVENT,
} = require('../binding.js')
const { kState, kStamp, kDispatch, kCloseByLoop, kFlushSends } = require('./symbols.js')
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
const { reportUncaught, systemError, withCode } = require('./errors.js')
const { loopArgument } = require('./loop.js')
const { viewOf } = require('./dispatch.js')

/** The largest UDP payload over IPv4 (65,535 - 20 bytes of IP header - 8 of UDP header). */
const MAX_IPV4_DATAGRAM = 65_507
/** Over IPv6, whose 40-byte header is not counted in its payload length. */
const MAX_IPV6_DATAGRAM = 65_527
/** The most datagrams one flush of coalesced sends hands to one sendmmsg (Linux's UIO_MAXIOV). */
const MAX_COALESCED_SENDS = 1024
/** Coalesced bytes held per socket before they are flushed early (the buffer is kept for reuse). */
const MAX_COALESCED_BYTES = 1024 * 1024

/**
 * @typedef {import('./loop.js').LoopState} LoopState
 * @typedef {(socket: UdpSocket, data: Buffer, port: number, address: string) => void} DataHandler
 * @typedef {(socket: UdpSocket) => void} DrainHandler
 * @typedef {(socket: UdpSocket, err: Error) => void} ErrorHandler
 */

/**
 * An IPv4 or IPv6 address (names are not resolved); returns its family.
 * @param {unknown} address
 * @param {string} name
 * @returns {number}
 */
function validateAddress(address, name) {
  if (typeof address !== 'string') throw invalidArgType(name, 'of type string', address)
  const family = isIP(address)
  if (family === 0) throw invalidArgValue(name, 'must be an IP address (names are not resolved)', address)
  return family
}

/**
 * @param {unknown} value
 * @param {string} name
 * @returns {asserts value is boolean}
 */
function validateBoolean(value, name) {
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value)
}

/**
 * A multicast interface as the kernel call takes it: an IPv4 address as is; for IPv6 the name
 * or index after the `%` of `'::%eth0'` (or given alone).
 * @param {unknown} value
 * @param {string} name
 * @returns {string}
 */
function interfaceOf(value, name) {
  if (typeof value !== 'string' || value === '') throw invalidArgType(name, 'a non-empty string', value)
  validateNoNul(value, name)
  const scope = value.indexOf('%')
  return scope === -1 ? value : value.slice(scope + 1)
}

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
  /** @type {ErrorHandler | undefined} */
  #onError
  /** The connected peer, if any. */
  #remoteAddress = /** @type {string | undefined} */ (undefined)
  #remotePort = /** @type {number | undefined} */ (undefined)
  /** The connected peer's address family (4 or 6), 0 while not connected. */
  #remoteFamily = 0
  /** The count as it was when last read (what stays once the socket is closed). */
  #dropped = 0
  /** options.coalesceSends: send() during a dispatch joins one sendmmsg at its end. */
  #coalesce = true
  /** options.borrowData: onData's Buffer is valid only until the handler returns. */
  #borrowData = false
  /**
   * Datagrams send() took during the current dispatch, not yet flushed: their bytes back to back
   * in `#packed`, and three words each in `#meta`: where its bytes end, its port, and the index
   * of its address in `#addresses` (each distinct one once; none for a connected socket's).
   * Reused between flushes; grown as needed, within MAX_COALESCED_SENDS and MAX_COALESCED_BYTES.
   */
  #count = 0
  #packed = Buffer.alloc(0)
  #packedBytes = 0
  #meta = new Uint32Array(0)
  /** @type {string[]} */
  #addresses = []
  /** @type {Map<string, number>} */
  #addressIds = new Map()
  /** A flush found the kernel's buffer full: send() returns false until onDrain. */
  #full = false
  /** Datagrams send() took that the kernel refused at the flush (a full buffer, an error). */
  #sendDropped = 0
  /** The last address send() checked, and its family: a server answers the same peers. */
  #checkedAddress = ''
  #checkedFamily = 0

  /**
   * @param {import('./loop.js').Loop | null | undefined} loop
   * @param {import('../index.js').UdpSocketOptions} options
   */
  constructor(loop, options) {
    const udpLoop = loopArgument(loop)
    if (options === undefined) throw invalidArgType('options', 'of type object', options)
    const {
      host,
      port = 0,
      exclusive = false,
      ipv6Only = false,
      coalesceSends = true,
      borrowData = false,
      onData,
      onDrain,
      onError,
    } = validateOptions(options, 'options')
    if (host !== null && host !== undefined && typeof host !== 'string') {
      throw invalidArgType('options.host', 'of type string or null', host)
    }
    if (typeof host === 'string') validateNoNul(host, 'options.host')
    validateInteger(port, 'options.port', 0, 65535)
    if (typeof exclusive !== 'boolean') throw invalidArgType('options.exclusive', 'of type boolean', exclusive)
    if (typeof ipv6Only !== 'boolean') throw invalidArgType('options.ipv6Only', 'of type boolean', ipv6Only)
    if (typeof coalesceSends !== 'boolean') throw invalidArgType('options.coalesceSends', 'of type boolean', coalesceSends)
    if (typeof borrowData !== 'boolean') throw invalidArgType('options.borrowData', 'of type boolean', borrowData)
    validateFunction(onData, 'options.onData')
    if (onDrain !== undefined) validateFunction(onDrain, 'options.onDrain')
    if (onError !== undefined) validateFunction(onError, 'options.onError')
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
    this.#onError = /** @type {ErrorHandler | undefined} */ (onError)
    this.#coalesce = coalesceSends
    this.#borrowData = borrowData
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

  /**
   * Datagrams send() had taken that the kernel then refused (coalesced sends only: its buffer
   * was full when they were flushed, or it reported an error); kept once closed.
   */
  get sendDropped() {
    return this.#sendDropped
  }

  #readDropped() {
    if (!this.#closed && !this.#state.closed) this.#dropped = this.#state.core.udpReceivedDropped(this.#id)
  }

  /** The connected peer's address (undefined while not connected). */
  get remoteAddress() {
    return this.#remoteAddress
  }

  /** The connected peer's port (undefined while not connected). */
  get remotePort() {
    return this.#remotePort
  }

  /**
   * Sets a default peer: `send(data)` goes there, and only its datagrams are received.
   * @param {string} address
   * @param {number} port
   */
  connect(address, port) {
    const family = validateAddress(address, 'address')
    validateInteger(port, 'port', 1, 65535)
    if (this.#closed || this.#state.closed) return
    this[kFlushSends]()
    this.#state.core.udpConnect(this.#id, port, address)
    this.#remoteAddress = address
    this.#remotePort = port
    this.#remoteFamily = family
  }

  /** Dissolves the default peer. */
  disconnect() {
    if (this.#remoteAddress === undefined) {
      throw withCode(new Error('disconnect: the socket is not connected'), 'ERR_SOCKET_DGRAM_NOT_CONNECTED')
    }
    if (!this.#closed && !this.#state.closed) {
      this[kFlushSends]()
      this.#state.core.udpConnect(this.#id, 0, null)
    }
    this.#remoteAddress = this.#remotePort = undefined
    this.#remoteFamily = 0
  }

  /**
   * Sends one datagram. Outside a dispatch it goes to the kernel at once: false when the
   * kernel cannot take it now (it was not sent: onDrain follows). While the loop dispatches a
   * batch (in onData and every other handler it calls), the datagram is copied and joins one
   * sendmmsg with the others sent during that batch, when the batch's dispatch ends (in order,
   * microseconds later): true means taken; false that the socket is closed, or that a flush
   * found the kernel's buffer full and onDrain has not come yet. A connected socket sends to
   * its peer (no port, address).
   * @param {string | ArrayBufferView} data
   * @param {number} [port]
   * @param {string} [address]
   */
  send(data, port, address) {
    const bytes = bytesOf(data, 'data')
    let family = this.#remoteFamily
    if (this.#remoteAddress !== undefined) {
      if (port !== undefined || address !== undefined) {
        throw withCode(new Error('send: the socket is connected; send(data) goes to its peer'), 'ERR_SOCKET_DGRAM_IS_CONNECTED')
      }
    } else {
      validateInteger(port, 'port', 1, 65535)
      family = this.#familyOf(address)
    }
    const max = family === 4 ? MAX_IPV4_DATAGRAM : MAX_IPV6_DATAGRAM
    if (bytes.byteLength > max) {
      throw outOfRange('data', `at most ${max} bytes for an IPv${family} address`, `${bytes.byteLength} bytes`)
    }
    const state = this.#state
    if (this.#closed || state.closed) return false
    if (this.#coalesce && state.dispatching) {
      if (this.#full) return false
      this.#coalesceDatagram(bytes, port ?? 0, address)
      return true
    }
    try {
      return state.core.udpSend(this.#id, bytes, port ?? 0, address ?? null)
    } catch (err) {
      // What the kernel refused (an ICMP error about the connected peer, an unreachable
      // network): to onError, as the loop's receive errors are; thrown without one.
      const onError = this.#onError
      if (onError === undefined) throw err
      queueMicrotask(() => onError(this, /** @type {Error} */ (err)))
      return false
    }
  }

  /**
   * The family of a peer address send() was given (a one-entry cache: a server mostly answers
   * the peers that just wrote to it).
   * @param {unknown} address
   */
  #familyOf(address) {
    if (this.#checkedFamily !== 0 && address === this.#checkedAddress) return this.#checkedFamily
    const family = validateAddress(address, 'address')
    this.#checkedAddress = /** @type {string} */ (address)
    this.#checkedFamily = family
    return family
  }

  /**
   * Adds a datagram to the ones the current dispatch's flush sends (a copy: the caller may
   * reuse its buffer at once).
   * @param {Uint8Array} bytes what bytesOf made of send's data
   * @param {number} port
   * @param {string | undefined} address undefined on a connected socket
   */
  #coalesceDatagram(bytes, port, address) {
    const length = bytes.byteLength
    if (this.#count === MAX_COALESCED_SENDS || this.#packedBytes + length > MAX_COALESCED_BYTES) this[kFlushSends]()
    if (this.#count === 0) this.#state.coalescedSends.push(this)
    const count = this.#count
    if (count * 3 === this.#meta.length) {
      const bigger = new Uint32Array(3 * Math.min(Math.max(16, count * 2), MAX_COALESCED_SENDS))
      bigger.set(this.#meta)
      this.#meta = bigger
    }
    if (this.#packedBytes + length > this.#packed.length) {
      const grown = Buffer.allocUnsafe(Math.max(64 * 1024, 2 * (this.#packedBytes + length)))
      this.#packed.copy(grown, 0, 0, this.#packedBytes)
      this.#packed = grown
    }
    this.#packed.set(bytes, this.#packedBytes)
    this.#packedBytes += length
    const meta = this.#meta
    meta[3 * count] = this.#packedBytes
    meta[3 * count + 1] = port
    if (address !== undefined) {
      let index = this.#addressIds.get(address)
      if (index === undefined) {
        index = this.#addresses.push(address) - 1
        this.#addressIds.set(address, index)
      }
      meta[3 * count + 2] = index
    }
    this.#count = count + 1
  }

  /**
   * Hands the datagrams send() coalesced to the kernel, in sendmmsg calls of up to 1,024. What
   * the kernel refuses is dropped and counted (sendDropped); a full buffer makes send() return
   * false until onDrain, an error goes to onError. Internal: the loop calls it when a batch's
   * dispatch ends, and the socket before anything that must not overtake them.
   */
  [kFlushSends]() {
    const count = this.#count
    if (count === 0) return
    const addresses = this.#addresses
    // Reset first: the arrays are reused, and nothing below adds to them.
    this.#count = 0
    this.#packedBytes = 0
    this.#addresses = []
    this.#addressIds.clear()
    if (this.#closed || this.#state.closed) return
    const core = this.#state.core
    const packed = this.#packed
    const meta = this.#meta.subarray(0, 3 * count)
    // sendmmsg stops at the first datagram it cannot send: a full buffer (nothing more now) or
    // an error, which the next call, starting at that datagram, reports.
    let sent = 0
    while (sent < count && !this.#closed && !this.#state.closed) {
      let taken
      try {
        taken = core.udpSendPacked(this.#id, packed, meta, addresses, sent)
      } catch (err) {
        // That datagram was refused: reported, dropped, and the rest go on.
        const onError = this.#onError
        if (onError === undefined) reportUncaught(err)
        else queueMicrotask(() => onError(this, /** @type {Error} */ (err)))
        this.#sendDropped++
        sent++
        continue
      }
      sent += taken
      if (taken === 0) {
        // The kernel's buffer is full: the loop reports when it can take more (onDrain).
        this.#full = true
        break
      }
    }
    // What a full buffer left, or a close in an onError handler.
    this.#sendDropped += count - sent
  }

  /**
   * Sends many datagrams in one sendmmsg: `[data, port, address, ...]`, or for a connected
   * socket `[data, data, ...]`. Returns how many the kernel took, in order (the rest were not
   * sent; onDrain follows).
   * @param {unknown[]} packets
   */
  sendMany(packets) {
    if (!Array.isArray(packets)) throw invalidArgType('packets', 'an Array', packets)
    const connected = this.#remoteAddress !== undefined
    const stride = connected ? 1 : 3
    if (packets.length % stride !== 0) {
      throw invalidArgValue('packets', 'must hold [data, port, address] triples', `${packets.length} entries`)
    }
    /** @type {Buffer[]} */
    const datas = []
    /** @type {number[]} */
    const ports = []
    /** @type {string[]} */
    const addresses = []
    for (let i = 0; i < packets.length; i += stride) {
      const bytes = bytesOf(packets[i], `packets[${i}]`)
      let family = this.#remoteFamily
      if (!connected) {
        validateInteger(packets[i + 1], `packets[${i + 1}]`, 1, 65535)
        family = validateAddress(packets[i + 2], `packets[${i + 2}]`)
        ports.push(/** @type {number} */ (packets[i + 1]))
        addresses.push(/** @type {string} */ (packets[i + 2]))
      }
      const max = family === 4 ? MAX_IPV4_DATAGRAM : MAX_IPV6_DATAGRAM
      if (bytes.byteLength > max) throw outOfRange(`packets[${i}]`, `at most ${max} bytes`, `${bytes.byteLength} bytes`)
      datas.push(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
    }
    if (this.#closed || this.#state.closed || datas.length === 0) return 0
    // Coalesced sends of this dispatch go first: datagrams leave in the order they were given.
    this[kFlushSends]()
    try {
      return this.#state.core.udpSendMany(this.#id, datas, ports, connected ? null : addresses)
    } catch (err) {
      const onError = this.#onError
      if (onError === undefined) throw err
      queueMicrotask(() => onError(this, /** @type {Error} */ (err)))
      return 0
    }
  }

  /** @param {boolean} on SO_BROADCAST: datagrams may go to broadcast addresses. */
  setBroadcast(on) {
    validateBoolean(on, 'on')
    this.#configure((core) => core.udpSetBroadcast(this.#id, on))
  }

  /**
   * @param {number} ttl the unicast TTL (IPv6: hop limit), 1 to 255
   * @returns {number}
   */
  setTTL(ttl) {
    validateInteger(ttl, 'ttl', 1, 255)
    this.#configure((core) => core.udpSetTtl(this.#id, ttl))
    return ttl
  }

  /**
   * @param {number} ttl the multicast TTL (IPv6: hop limit), 0 to 255
   * @returns {number}
   */
  setMulticastTTL(ttl) {
    validateInteger(ttl, 'ttl', 0, 255)
    this.#configure((core) => core.udpSetMulticastTtl(this.#id, ttl))
    return ttl
  }

  /**
   * @param {boolean} on whether this host's own multicast datagrams come back to it
   * @returns {boolean}
   */
  setMulticastLoopback(on) {
    validateBoolean(on, 'on')
    this.#configure((core) => core.udpSetMulticastLoopback(this.#id, on))
    return on
  }

  /** @param {string} multicastInterface IPv4: an address; IPv6: `'::%name'` (or a name, an index) */
  setMulticastInterface(multicastInterface) {
    const iface = interfaceOf(multicastInterface, 'multicastInterface')
    this.#configure((core) => core.udpSetMulticastInterface(this.#id, iface))
  }

  /**
   * @param {string} multicastAddress
   * @param {string} [multicastInterface]
   */
  addMembership(multicastAddress, multicastInterface) {
    this.#membership(true, multicastAddress, multicastInterface)
  }

  /**
   * @param {string} multicastAddress
   * @param {string} [multicastInterface]
   */
  dropMembership(multicastAddress, multicastInterface) {
    this.#membership(false, multicastAddress, multicastInterface)
  }

  /**
   * @param {boolean} join
   * @param {unknown} group
   * @param {unknown} iface
   */
  #membership(join, group, iface) {
    validateAddress(group, 'multicastAddress')
    const name = iface === undefined ? null : interfaceOf(iface, 'multicastInterface')
    this.#configure((core) => core.udpMembership(this.#id, join, /** @type {string} */ (group), name))
  }

  /**
   * SO_RCVBUF; returns the size the kernel set (it doubles the request, within rmem_max).
   * @param {number} bytes
   * @returns {number}
   */
  setRecvBufferSize(bytes) {
    validateInteger(bytes, 'bytes', 1, 2 ** 31 - 1)
    return this.#configure((core) => core.udpSetBufferSize(this.#id, true, bytes)) ?? 0
  }

  /**
   * SO_SNDBUF; returns the size the kernel set.
   * @param {number} bytes
   * @returns {number}
   */
  setSendBufferSize(bytes) {
    validateInteger(bytes, 'bytes', 1, 2 ** 31 - 1)
    return this.#configure((core) => core.udpSetBufferSize(this.#id, false, bytes)) ?? 0
  }

  /** @returns {number} SO_RCVBUF as the kernel reports it (0 once closed) */
  getRecvBufferSize() {
    return this.#configure((core) => core.udpBufferSize(this.#id, true)) ?? 0
  }

  /** @returns {number} SO_SNDBUF as the kernel reports it (0 once closed) */
  getSendBufferSize() {
    return this.#configure((core) => core.udpBufferSize(this.#id, false)) ?? 0
  }

  /**
   * Applies a socket option unless the socket is closed (then a no-op).
   * @template T
   * @param {(core: import('../binding.js').LoopCore) => T} apply
   * @returns {T | undefined}
   */
  #configure(apply) {
    if (this.#closed || this.#state.closed) return undefined
    return apply(this.#state.core)
  }

  /** Closes the socket; its port is free when it returns. Idempotent. */
  close() {
    if (this.#closed) return
    // What send() took before the close is sent.
    this[kFlushSends]()
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
      const address = viewOf(records, start, addressLength).toString('latin1')
      const dataLength = arg - DATAGRAM_ADDRESS * 4 - addressLength
      this.#state.handedOut(this.#borrowData)
      this.#onData(this, viewOf(records, start + addressLength, dataLength), port, address)
    } else if (kind === EVENT_WRITABLE) {
      this.#full = false
      this.#onDrain?.(this)
    } else if (kind === EVENT_DATAGRAM_ERROR) {
      const err = systemError(arg, 'recvmmsg')
      if (this.#onError === undefined) reportUncaught(err)
      else this.#onError(this, err)
    }
  }

  [kCloseByLoop]() {
    this.close()
  }
}

module.exports = { UdpSocket }
