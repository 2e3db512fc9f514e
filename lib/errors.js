// @ts-check
// Errors the API throws or reports that are not argument errors (lib/validate.js): codes and
// messages shaped like Node's.
'use strict'

const { getSystemErrorName } = require('node:util')
const { TlsContextCore, UV_ENOTFOUND } = require('../binding.js')

/** @typedef {import('../index.js').SocketError} SocketError */

/**
 * Gives `err` its string `code`.
 * @template {Error} E
 * @param {E} err
 * @param {string} code
 * @returns {E & { code: string }}
 */
function withCode(err, code) {
  const coded = /** @type {E & { code: string }} */ (err)
  coded.code = code
  return coded
}

function loopClosedError() {
  return withCode(new Error('The loop is closed'), 'ERR_LOOP_CLOSED')
}

/** @param {string} method */
function tlsOnly(method) {
  return withCode(new Error(`${method} needs a TLS context (new SocketContext(loop, { tls }))`), 'ERR_TLS_REQUIRED')
}

/**
 * A throwing callback is reported like any Node callback ('uncaughtException'), after the rest
 * of its batch has been dispatched: one bad handler must not starve the others.
 * @param {unknown} err
 */
function reportUncaught(err) {
  process.nextTick(() => {
    throw err
  })
}

/**
 * The Error of a socket's close or connect error: a TLS failure (a negative code below libuv's
 * range, with a string code 'ERR_TLS_...'), else an errno or libuv code like Node's.
 * @param {number} code
 * @param {string} syscall
 * @returns {SocketError}
 */
function socketError(code, syscall) {
  const tls = code < 0 ? TlsContextCore.describeFailure(code) : null
  if (tls === null) return systemError(code, syscall)
  const err = /** @type {SocketError} */ (new Error(tls.message))
  err.errno = code
  err.code = tls.code
  return err
}

/**
 * An Error for an errno (positive) or a libuv code (negative), shaped like Node's. libuv's code
 * for a failed name lookup (EAI_NONAME) is ENOTFOUND, as Node's net reports it.
 * @param {number} code
 * @param {string} syscall
 * @returns {SocketError}
 */
function systemError(code, syscall) {
  const name = code === UV_ENOTFOUND ? 'ENOTFOUND' : getSystemErrorName(code > 0 ? -code : code)
  const err = /** @type {SocketError} */ (new Error(`${syscall} ${name}`))
  err.errno = code
  err.code = name
  err.syscall = syscall
  return err
}

module.exports = { withCode, loopClosedError, tlsOnly, reportUncaught, socketError, systemError }
