// @ts-check
// Argument checks, with Node's error codes and wording.
'use strict'

const { withCode } = require('./errors.js')

/**
 * How a received value is shown in an argument error.
 * @param {unknown} value
 */
function describe(value) {
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (typeof value === 'function') return `function ${value.name || '<anonymous>'}`
  if (typeof value === 'object') return `an instance of ${value.constructor?.name ?? 'Object'}`
  let shown = String(value)
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`
  if (typeof value === 'string') shown = `'${shown}'`
  return `type ${typeof value} (${shown})`
}

/**
 * @param {string} name
 * @param {string} expected
 * @param {unknown} value
 */
function invalidArgType(name, expected, value) {
  return withCode(new TypeError(`The "${name}" argument must be ${expected}. Received ${describe(value)}`), 'ERR_INVALID_ARG_TYPE')
}

/**
 * @param {string} name
 * @param {string} reason
 * @param {unknown} value
 */
function invalidArgValue(name, reason, value) {
  return withCode(new TypeError(`The argument '${name}' ${reason}. Received ${describe(value)}`), 'ERR_INVALID_ARG_VALUE')
}

/**
 * Host names and paths end at a NUL in the C calls below us: one inside is refused, not cut.
 * @param {string} value
 * @param {string} name
 */
function validateNoNul(value, name) {
  if (value.includes('\0')) throw invalidArgValue(name, 'must not contain null bytes', value)
}

/**
 * @param {string} name
 * @param {string} range
 * @param {unknown} value
 */
function outOfRange(name, range, value) {
  return withCode(new RangeError(`The value of "${name}" is out of range. It must be ${range}. Received ${value}`), 'ERR_OUT_OF_RANGE')
}

/**
 * @param {unknown} value
 * @param {string} name
 * @returns {asserts value is Function}
 */
function validateFunction(value, name) {
  if (typeof value !== 'function') throw invalidArgType(name, 'of type function', value)
}

/**
 * @param {unknown} value
 * @param {string} name
 * @param {number} min
 * @param {number} max
 * @returns {asserts value is number}
 */
function validateInteger(value, name, min, max) {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value)
  if (!Number.isInteger(value)) throw outOfRange(name, 'an integer', value)
  if (value < min || value > max) throw outOfRange(name, `>= ${min} && <= ${max}`, value)
}

/**
 * An options argument: undefined is no options; anything else must be an object. What its
 * fields hold is checked by the caller, so they are unknown here.
 * @template {object} T
 * @param {T | undefined} value
 * @param {string} name
 * @returns {{ [K in keyof T]?: unknown }}
 */
function validateOptions(value, name) {
  if (value === undefined) return {}
  if (value === null || typeof value !== 'object') throw invalidArgType(name, 'of type object', value)
  return value
}

// sockaddr_un holds 108 bytes including the terminating NUL.
const MAX_UNIX_PATH_BYTES = 107

/**
 * @param {unknown} path
 * @returns {asserts path is string}
 */
function validateUnixPath(path) {
  if (typeof path !== 'string' || path === '') throw invalidArgType('path', 'a non-empty string', path)
  validateNoNul(path, 'path')
  const bytes = Buffer.byteLength(path)
  if (bytes > MAX_UNIX_PATH_BYTES) throw outOfRange('path', `at most ${MAX_UNIX_PATH_BYTES} bytes long`, `${bytes} bytes`)
}

/**
 * Bytes to write: a Buffer / Uint8Array as is, other views as bytes, strings as UTF-8.
 * @param {unknown} data
 * @param {string} name
 * @returns {Uint8Array}
 */
function bytesOf(data, name) {
  if (data instanceof Uint8Array) return data
  if (typeof data === 'string') return Buffer.from(data, 'utf8')
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  throw invalidArgType(name, 'of type string or an instance of Buffer, TypedArray or DataView', data)
}

module.exports = {
  describe,
  invalidArgType,
  invalidArgValue,
  validateNoNul,
  outOfRange,
  validateFunction,
  validateInteger,
  validateOptions,
  validateUnixPath,
  bytesOf,
}
