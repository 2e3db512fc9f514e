// @ts-check
// Poll: a slot on a loop watching an fd, whose Poll records (EVENT_POLL) run its callback.
'use strict'

const { EVENT_POLL, READABLE, WRITABLE } = require('../binding.js')
const { kStamp, kDispatch, kCloseByLoop } = require('./symbols.js')
const { withCode } = require('./errors.js')
const { validateFunction, validateInteger } = require('./validate.js')
const { LoopHandle } = require('./loop.js')

const MAX_FD = 2 ** 31 - 1

class Poll {
  #handle
  #fd = -1
  #events = 0
  /** @type {((poll: Poll, events: number) => void) | null} */
  #callback = null

  /**
   * @param {import('./loop.js').Loop | null} [loop]
   * @param {import('../index.js').HandleOptions} [options]
   */
  constructor(loop, options) {
    this.#handle = new LoopHandle(this, loop, options)
    this[kStamp] = 0
  }

  get ext() {
    return this.#handle.ext
  }

  set ext(value) {
    this.#handle.ext = value
  }

  get fd() {
    return this.#fd
  }

  get events() {
    return this.#events
  }

  /** @param {number} fd */
  init(fd) {
    validateInteger(fd, 'fd', 0, MAX_FD)
    const handle = this.#handle
    if (handle.gone) return
    if (handle.active) {
      throw withCode(new Error('The poll is started; stop() it before init() with another fd'), 'ERR_POLL_STARTED')
    }
    handle.state.core.checkPollable(fd)
    this.#fd = fd
  }

  /**
   * @param {number} events
   * @param {(poll: Poll, events: number) => void} callback
   */
  start(events, callback) {
    validateInteger(events, 'events', 0, READABLE | WRITABLE)
    validateFunction(callback, 'callback')
    const handle = this.#handle
    if (handle.gone) return
    if (this.#fd < 0) {
      throw withCode(new Error('The poll has no fd: call init(fd) first'), 'ERR_POLL_NOT_INITIALIZED')
    }
    if (handle.active) {
      handle.state.core.changePoll(handle.id, this.#fd, events)
    } else {
      const stamp = handle.activate(this)
      try {
        handle.state.core.startPoll(handle.id, stamp, this.#fd, events)
      } catch (err) {
        handle.deactivate(this)
        throw err
      }
    }
    this.#events = events
    this.#callback = callback
  }

  /** @param {number} events */
  change(events) {
    validateInteger(events, 'events', 0, READABLE | WRITABLE)
    const handle = this.#handle
    if (handle.gone) return
    if (handle.active) handle.state.core.changePoll(handle.id, this.#fd, events)
    this.#events = events
  }

  stop() {
    const handle = this.#handle
    if (handle.gone || !handle.active) return
    handle.deactivate(this)
    handle.state.core.stopPoll(handle.id, this.#fd)
  }

  /** Stops the poll and frees it for good (us_poll_free). The fd stays open. */
  close() {
    const handle = this.#handle
    if (handle.gone) return
    if (handle.active) handle.state.core.stopPoll(handle.id, this.#fd)
    handle.close(this)
  }

  /**
   * @param {number} kind
   * @param {number} ready
   */
  [kDispatch](kind, ready) {
    // The mask may have changed since the loop checked the fd.
    const wanted = ready & this.#events
    // Started, so start() gave it a callback.
    if (kind === EVENT_POLL && wanted !== 0) /** @type {(poll: Poll, events: number) => void} */ (this.#callback)(this, wanted)
  }

  [kCloseByLoop]() {
    this.#handle.deactivate(this)
    this.#handle.closed = true
  }
}

module.exports = { Poll }
