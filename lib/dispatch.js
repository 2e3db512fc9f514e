// @ts-check
// The record decoders: the walk over a batch of event records from the loop thread, which hands
// each record to its handle, and the readers of the records' payloads. The record format and
// every number in it are the binding's (src/binding/wire.rs): `[kind, slot index, stamp, arg]`,
// then, for Open, Data and ServerName, `arg` payload bytes padded to whole words.
//
// Dispatch runs in JavaScript rather than in Rust because a JS loop calling JS callbacks costs
// tens of nanoseconds per event; a call from native code into JS costs ten times that.
'use strict'

const {
  WORDS_PER_EVENT,
  EVENT_WAKEUP,
  EVENT_OPEN,
  EVENT_SERVER_NAME,
  KINDS_WITH_PAYLOAD,
  OPENED_BY_CONNECT,
  OPENED_BY_ADOPTION,
  PAYLOAD_LISTENER_INDEX,
  PAYLOAD_LISTENER_GENERATION,
  OPEN_REMOTE_PORT,
  OPEN_LOCAL_PORT,
  OPEN_REMOTE_LENGTH,
  OPEN_ADDRESSES,
  SERVER_NAME_TEXT,
  SLOT_INDEX_RANGE,
} = require('../binding.js')
const { kStamp, kDispatch, kAcceptConnection, kServerNameRequested } = require('./symbols.js')
const { reportUncaught } = require('./errors.js')

// Payload words, counted from the record's start.
const LISTENER_INDEX_AT = WORDS_PER_EVENT + PAYLOAD_LISTENER_INDEX
const LISTENER_GENERATION_AT = WORDS_PER_EVENT + PAYLOAD_LISTENER_GENERATION
const REMOTE_PORT_AT = WORDS_PER_EVENT + OPEN_REMOTE_PORT
const LOCAL_PORT_AT = WORDS_PER_EVENT + OPEN_LOCAL_PORT
const REMOTE_LENGTH_AT = WORDS_PER_EVENT + OPEN_REMOTE_LENGTH
const ADDRESSES_AT = WORDS_PER_EVENT + OPEN_ADDRESSES
const SERVER_NAME_AT = WORDS_PER_EVENT + SERVER_NAME_TEXT

/**
 * A Buffer over batch memory, made as Node makes its own Buffers (a Uint8Array whose prototype
 * leads to Buffer.prototype, its constructor Buffer, so `instanceof`, `Buffer.isBuffer`,
 * `subarray` and every method behave the same) without `Buffer.from`'s argument checks, which
 * cost twice as much per Data record and datagram as the view itself. (Node's own class,
 * `Buffer[Symbol.species]`, measured slower here: 5-10% fewer pipelined echoes per second.)
 */
class BatchView extends Uint8Array {}
Object.setPrototypeOf(BatchView.prototype, Buffer.prototype)
BatchView.prototype.constructor = Buffer

/**
 * `length` bytes of `records`' memory from byte `start` of its buffer.
 * @param {Uint32Array} records
 * @param {number} start
 * @param {number} length
 * @returns {Buffer}
 */
function viewOf(records, start, length) {
  const memory = /** @type {ArrayBuffer} */ (records.buffer)
  return /** @type {Buffer} */ (/** @type {unknown} */ (new BatchView(memory, start, length)))
}

/**
 * What a loop's handle table holds at a slot index.
 * @typedef {import('./timer.js').Timer
 *   | import('./poll.js').Poll
 *   | import('./socket.js').Socket
 *   | import('./socket.js').ListenSocket
 *   | import('./udp.js').UdpSocket} LoopEntry
 * @typedef {import('./loop.js').LoopState} LoopState
 * @typedef {import('./socket.js').ListenSocket} ListenSocket
 * @typedef {import('./socket.js').Socket} Socket
 */

/**
 * Hands each record of `records` to its handle, dropping those whose stamp is no longer the
 * handle's: a record queued before a stop(), close() or new set() (API.md).
 * @param {LoopState} state
 * @param {Uint32Array} records
 */
function dispatchRecords(state, records) {
  const handles = state.handles
  for (let i = 0; i < records.length; ) {
    const kind = records[i]
    const index = records[i + 1]
    const stamp = records[i + 2]
    const arg = records[i + 3]
    const at = i
    i +=
      (KINDS_WITH_PAYLOAD >>> kind) & 1
        ? WORDS_PER_EVENT + ((arg + 3) >>> 2)
        : WORDS_PER_EVENT
    try {
      if (kind === EVENT_WAKEUP) {
        if (state.onWakeup !== undefined && !state.closed) state.onWakeup(state.loop)
        continue
      }
      if (kind === EVENT_OPEN && openedByListener(records, at)) {
        accepted(state, records, at)
        continue
      }
      if (kind === EVENT_SERVER_NAME) {
        serverNameRequested(state, records, at)
        continue
      }
      const handle = handles[index]
      if (handle !== undefined && handle[kStamp] === stamp) handle[kDispatch](kind, arg, records, at)
    } catch (err) {
      reportUncaught(err)
    }
  }
}

/**
 * The id of the socket a record is about: its slot index under its stamp (the generation).
 * @param {Uint32Array} records
 * @param {number} at
 */
function socketIdOf(records, at) {
  return records[at + 2] * SLOT_INDEX_RANGE + records[at + 1]
}

/**
 * The handle an Open or ServerName payload names, if it still is that open handle (another may
 * hold its slot now) and it answers `capability`: a listener (kAcceptConnection) for an
 * accepted connection; a listener or a socket (kServerNameRequested) for a name question.
 * @param {LoopState} state
 * @param {Uint32Array} records
 * @param {number} at
 * @param {symbol} capability
 * @returns {ListenSocket | Socket | undefined}
 */
function handleNamedIn(state, records, at, capability) {
  const entry = state.handles[records[at + LISTENER_INDEX_AT]]
  if (entry === undefined || !(capability in entry)) return undefined
  const named = /** @type {ListenSocket | Socket} */ (entry)
  if (named[kStamp] !== records[at + LISTENER_GENERATION_AT] || named.isClosed) return undefined
  return named
}

/**
 * An accepted connection: its listener's context gets a new Socket, then onOpen.
 * @param {LoopState} state
 * @param {Uint32Array} records
 * @param {number} at
 */
function accepted(state, records, at) {
  const id = socketIdOf(records, at)
  const listener = /** @type {ListenSocket | undefined} */ (handleNamedIn(state, records, at, kAcceptConnection))
  // Accepted just before its listener closed: nobody asked for it.
  if (listener === undefined) state.core.closeSocket(id)
  else listener[kAcceptConnection](id, records, at)
}

/**
 * A TLS client asked for a name no pattern matches: the onServerName of the context of the
 * handle the payload names (the listener of a new connection; an upgraded or adopted socket
 * itself) may add one; the handshake goes on when it returns (also when it throws or nobody
 * listens).
 * @param {LoopState} state
 * @param {Uint32Array} records
 * @param {number} at
 */
function serverNameRequested(state, records, at) {
  const id = socketIdOf(records, at)
  try {
    handleNamedIn(state, records, at, kServerNameRequested)?.[kServerNameRequested](serverNameOf(records, at))
  } finally {
    if (!state.closed) state.core.serverNameChosen(id)
  }
}

/**
 * The name of a ServerName record (a host name: ASCII).
 * @param {Uint32Array} records
 * @param {number} at
 */
function serverNameOf(records, at) {
  const bytes = records[at + 3] - SERVER_NAME_TEXT * 4
  return viewOf(records, records.byteOffset + (at + SERVER_NAME_AT) * 4, bytes).toString('latin1')
}

/**
 * The bytes of a Data record: a view of the batch, no copy.
 * @param {Uint32Array} records
 * @param {number} at
 * @param {number} length the record's `arg`
 */
function dataOf(records, at, length) {
  return viewOf(records, records.byteOffset + (at + WORDS_PER_EVENT) * 4, length)
}

/**
 * Whether an Open record is of a socket a listener accepted (its handle is made now), rather
 * than one JavaScript made (connect, adoptFd).
 * @param {Uint32Array} records
 * @param {number} at
 */
function openedByListener(records, at) {
  const listener = records[at + LISTENER_INDEX_AT]
  return listener !== OPENED_BY_CONNECT && listener !== OPENED_BY_ADOPTION
}

/**
 * Whether an Open record is of a socket that connected (rather than was accepted or adopted).
 * @param {Uint32Array} records
 * @param {number} at
 */
function openedByConnect(records, at) {
  return records[at + LISTENER_INDEX_AT] === OPENED_BY_CONNECT
}

/**
 * The addresses of an Open record: the ports, then the remote and the local address as text.
 * @param {Uint32Array} records
 * @param {number} at
 */
function openedAddresses(records, at) {
  const payloadBytes = records[at + 3]
  const remotePort = records[at + REMOTE_PORT_AT] | 0
  const localPort = records[at + LOCAL_PORT_AT] | 0
  const remoteLength = records[at + REMOTE_LENGTH_AT]
  const text = viewOf(records, records.byteOffset + (at + ADDRESSES_AT) * 4, payloadBytes - OPEN_ADDRESSES * 4)
  return {
    remotePort,
    localPort,
    remoteAddress: text.toString('utf8', 0, remoteLength),
    localAddress: text.toString('utf8', remoteLength),
  }
}

module.exports = { dispatchRecords, dataOf, viewOf, openedByConnect, openedAddresses }
