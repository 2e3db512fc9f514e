// @ts-check
// Internal slots and methods shared between the modules of lib/; symbols keep them off the
// public API. Each has one job.
'use strict'

/** Loop: its LoopState (lib/loop.js). */
const kState = Symbol('usockets.loopState')
/**
 * Entries of a loop's handle table (timers, polls, sockets, listen sockets): the stamp their
 * records must carry to be dispatched (0: nothing armed).
 */
const kStamp = Symbol('usockets.stamp')
/** Entries of a loop's handle table: takes one record (lib/dispatch.js). */
const kDispatch = Symbol('usockets.dispatch')
/** Entries of a loop's handle table: closing the loop (or a socket's context) closes them. */
const kCloseByLoop = Symbol('usockets.closeByLoop')
/** SocketContext: its ContextState (lib/context.js). */
const kContextState = Symbol('usockets.contextState')
/** The token that Socket's and ListenSocket's constructors require: only lib/ makes them. */
const kConstructToken = Symbol('usockets.constructToken')
/** ListenSocket: a connection it accepted opened (an Open record). */
const kAcceptConnection = Symbol('usockets.acceptConnection')
/** ListenSocket: a TLS client asked for a name no pattern matches (a ServerName record). */
const kServerNameRequested = Symbol('usockets.serverNameRequested')
/** Socket: moves it to another context (SocketContext.adoptSocket). */
const kMoveToContext = Symbol('usockets.moveToContext')
/** UdpSocket: sends what send() coalesced during the batch being dispatched (lib/loop.js). */
const kFlushSends = Symbol('usockets.flushSends')
/** Socket: makes it a TLS socket of another context (SocketContext.upgrade, STARTTLS). */
const kUpgrade = Symbol('usockets.upgrade')
/** A socket's TCP options as the kernel reports them; registered, so that the specs can read them without an export. */
const kTcpOptions = Symbol.for('usockets-rs.tcpOptions')

/**
 * Makes an internal slot that was just assigned (which declares its type) read-only and leaves
 * it out of spreads and Object.assign: not writable, enumerable or configurable.
 * @param {object} object
 * @param {symbol} key
 */
function hideInternal(object, key) {
  Object.defineProperty(object, key, { writable: false, enumerable: false, configurable: false })
}

module.exports = {
  hideInternal,
  kState,
  kStamp,
  kDispatch,
  kCloseByLoop,
  kContextState,
  kConstructToken,
  kAcceptConnection,
  kServerNameRequested,
  kMoveToContext,
  kUpgrade,
  kFlushSends,
  kTcpOptions,
}
