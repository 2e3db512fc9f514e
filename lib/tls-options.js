// @ts-check
// TLS options (TlsOptions in index.d.ts): checked and converted for TlsContextCore, which checks
// the PEM itself.
'use strict'

const { withCode } = require('./errors.js')
const { describe, invalidArgType, outOfRange } = require('./validate.js')
const { TICKET_KEYS_BYTES } = require('../binding.js')

/** @typedef {import('../binding.js').TlsOptionsInput} TlsOptionsInput */

const NEWLINE = Buffer.from('\n')
/** handshakeTimeout: seconds, at most a day. */
const MAX_HANDSHAKE_TIMEOUT_SECONDS = 24 * 3600

/**
 * `minVersion` / `maxVersion`: 'TLSv1.2' or 'TLSv1.3'.
 * @param {unknown} value
 * @param {string} name
 * @returns {'TLSv1.2' | 'TLSv1.3' | undefined}
 */
function versionArgument(value, name) {
  if (value === undefined || value === null) return undefined
  if (value !== 'TLSv1.2' && value !== 'TLSv1.3') {
    const message = `${name} must be 'TLSv1.2' or 'TLSv1.3'. Received ${describe(value)}`
    throw withCode(new TypeError(message), 'ERR_TLS_INVALID_PROTOCOL_VERSION')
  }
  return value
}

/**
 * PEM input: a string, a Buffer / TypedArray, or (for chains and CA lists) an array of them.
 * @param {unknown} value
 * @param {string} name
 * @returns {Buffer | undefined}
 */
function pemArgument(value, name) {
  if (value === undefined || value === null) return undefined
  if (Array.isArray(value)) {
    // An element that is null or undefined gives undefined, which Buffer.concat refuses.
    const parts = value.map((part, i) => Buffer.concat([/** @type {Buffer} */ (pemArgument(part, `${name}[${i}]`)), NEWLINE]))
    return Buffer.concat(parts)
  }
  if (typeof value === 'string') return Buffer.from(value)
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  throw invalidArgType(name, 'a string, Buffer, TypedArray or an array of them', value)
}

/**
 * @template {'string' | 'boolean'} T
 * @param {unknown} value
 * @param {string} name
 * @param {T} type
 * @returns {(T extends 'string' ? string : boolean) | undefined}
 */
function optionalType(value, name, type) {
  if (value !== undefined && value !== null && typeof value !== type) throw invalidArgType(name, `of type ${type}`, value)
  return /** @type {(T extends 'string' ? string : boolean) | undefined} */ (value ?? undefined)
}

/**
 * TlsOptions, checked and converted for TlsContextCore.
 * @param {unknown} value
 * @param {string} name
 * @returns {TlsOptionsInput}
 */
function tlsArgument(value, name) {
  if (typeof value !== 'object' || Array.isArray(value)) throw invalidArgType(name, 'of type object', value)
  // Every field is checked below: until then each is unknown.
  const tls = /** @type {{ [K in keyof import('../index.js').TlsOptions]?: unknown }} */ (value)
  const { alpnProtocols, handshakeTimeout, ticketKeys } = tls
  if (alpnProtocols !== undefined && alpnProtocols !== null) {
    if (!Array.isArray(alpnProtocols)) throw invalidArgType(`${name}.alpnProtocols`, 'an array of strings', alpnProtocols)
    alpnProtocols.forEach((protocol, i) => {
      if (typeof protocol !== 'string') throw invalidArgType(`${name}.alpnProtocols[${i}]`, 'of type string', protocol)
      const bytes = Buffer.byteLength(protocol)
      if (bytes < 1 || bytes > 255) throw outOfRange(`${name}.alpnProtocols[${i}]`, '1 to 255 bytes long', `${bytes} bytes`)
    })
  }
  const minVersion = versionArgument(tls.minVersion, `${name}.minVersion`)
  const maxVersion = versionArgument(tls.maxVersion, `${name}.maxVersion`)
  if (minVersion === 'TLSv1.3' && maxVersion === 'TLSv1.2') {
    const message = `${name}.minVersion 'TLSv1.3' is above ${name}.maxVersion 'TLSv1.2'`
    throw withCode(new TypeError(message), 'ERR_TLS_PROTOCOL_VERSION_CONFLICT')
  }
  if (handshakeTimeout !== undefined && handshakeTimeout !== null) {
    if (typeof handshakeTimeout !== 'number') throw invalidArgType(`${name}.handshakeTimeout`, 'of type number', handshakeTimeout)
    if (!(handshakeTimeout > 0 && handshakeTimeout <= MAX_HANDSHAKE_TIMEOUT_SECONDS)) {
      throw outOfRange(`${name}.handshakeTimeout`, `> 0 and <= ${MAX_HANDSHAKE_TIMEOUT_SECONDS} (seconds)`, handshakeTimeout)
    }
  }
  if (ticketKeys !== undefined && ticketKeys !== null) {
    if (!ArrayBuffer.isView(ticketKeys)) throw invalidArgType(`${name}.ticketKeys`, 'a Buffer or TypedArray', ticketKeys)
    if (ticketKeys.byteLength !== TICKET_KEYS_BYTES) {
      throw outOfRange(`${name}.ticketKeys`, `${TICKET_KEYS_BYTES} bytes long`, `${ticketKeys.byteLength} bytes`)
    }
  }
  // The seed's fields without a rustls equivalent: checked, then ignored (see index.d.ts).
  optionalType(tls.dhParamsFileName, `${name}.dhParamsFileName`, 'string')
  optionalType(tls.sslCiphers, `${name}.sslCiphers`, 'string')
  optionalType(tls.preferLowMemoryUsage, `${name}.preferLowMemoryUsage`, 'boolean')
  return {
    key: pemArgument(tls.key, `${name}.key`),
    cert: pemArgument(tls.cert, `${name}.cert`),
    keyFileName: optionalType(tls.keyFileName, `${name}.keyFileName`, 'string'),
    certFileName: optionalType(tls.certFileName, `${name}.certFileName`, 'string'),
    passphrase: optionalType(tls.passphrase, `${name}.passphrase`, 'string'),
    ca: pemArgument(tls.ca, `${name}.ca`),
    caFileName: optionalType(tls.caFileName, `${name}.caFileName`, 'string'),
    rejectUnauthorized: optionalType(tls.rejectUnauthorized, `${name}.rejectUnauthorized`, 'boolean'),
    requestCert: optionalType(tls.requestCert, `${name}.requestCert`, 'boolean'),
    servername: optionalType(tls.servername, `${name}.servername`, 'string'),
    alpnProtocols: /** @type {string[] | null | undefined} */ (alpnProtocols) ?? undefined,
    minVersion,
    maxVersion,
    handshakeTimeout: /** @type {number | null | undefined} */ (handshakeTimeout) ?? undefined,
    ticketKeys:
      ticketKeys === undefined || ticketKeys === null
        ? undefined
        : Buffer.from(
            /** @type {ArrayBufferView} */ (ticketKeys).buffer,
            /** @type {ArrayBufferView} */ (ticketKeys).byteOffset,
            TICKET_KEYS_BYTES,
          ),
  }
}

/**
 * How SNI patterns are keyed (src/tls/names.rs compares them the same way).
 * @param {string} pattern
 */
function serverNameKey(pattern) {
  return (pattern.endsWith('.') ? pattern.slice(0, -1) : pattern).toLowerCase()
}

module.exports = { tlsArgument, serverNameKey }
