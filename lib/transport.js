'use strict'
// `options.transport` as an object, in ioredis's spirit, read into the URL the native side
// parses (one form to check, redact and show in errors and `memsync status`):
//   { host, port }                           one server      redis://host:port
//   { sentinels: [{ host, port }], name }    Sentinel        redis+sentinel://h:p,h:p/name
//   { cluster: [{ host, port }] }            a Cluster       redis+cluster://h:p,h:p
// with `username`, `password` and `db` (not with a Cluster), and `tls` for one server: `true`
// (the system's CAs) or `{ ca, cert, key }`, paths of PEM files (ioredis takes their contents;
// paths keep the URL free of secrets and let a renewed certificate be read again).

const { MemErrors, codedError } = require('./errors.js')
const { isPlainObject } = require('./validate.js')

const KEYS = ['host', 'port', 'sentinels', 'name', 'cluster', 'username', 'password', 'db', 'tls']
const TLS_KEYS = ['ca', 'cert', 'key']

function invalid (message) {
  return codedError(MemErrors.ERR_INVALID_ARG, `options.transport: ${message}`)
}

/** `host:port` of one node, an IPv6 address in brackets. */
function node ({ host, port } = {}, defaultPort, what) {
  if (typeof host !== 'string' || host === '') throw invalid(`${what} needs a host name`)
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) {
    throw invalid(`${what}'s port must be an integer from 1 to 65535, not ${port}`)
  }
  return `${host.includes(':') ? `[${host}]` : host}:${port ?? defaultPort}`
}

function nodes (list, defaultPort, what) {
  if (!Array.isArray(list) || list.length === 0) throw invalid(`${what} must be a non-empty array of { host, port }`)
  return list.map((one, i) => node(one, defaultPort, `${what}[${i}]`)).join(',')
}

function credentials ({ username, password }) {
  for (const [field, value] of [['username', username], ['password', password]]) {
    if (value !== undefined && typeof value !== 'string') throw invalid(`${field} must be a string`)
  }
  if (username === undefined && password === undefined) return ''
  const user = encodeURIComponent(username ?? '')
  return password === undefined ? `${user}@` : `${user}:${encodeURIComponent(password)}@`
}

function database (db) {
  if (db === undefined) return ''
  if (!(Number.isInteger(db) && db >= 0)) throw invalid(`db must be a database number, not ${db}`)
  return `/${db}`
}

function tlsQuery (tls) {
  if (tls === true) return ''
  if (!isPlainObject(tls)) throw invalid('tls must be true or { ca, cert, key } (paths of PEM files)')
  const unknown = Object.keys(tls).filter((key) => !TLS_KEYS.includes(key))
  if (unknown.length > 0) throw invalid(`tls takes ${TLS_KEYS.join(', ')}, not ${unknown.join(', ')}`)
  const parts = []
  for (const field of TLS_KEYS) {
    const value = tls[field]
    if (value === undefined) continue
    if (typeof value !== 'string' || value === '' || value.includes('-----BEGIN')) {
      throw invalid(`tls.${field} must be the path of a PEM file (not its contents)`)
    }
    parts.push(`${field}=${encodeURIComponent(value)}`)
  }
  return parts.length === 0 ? '' : `?${parts.join('&')}`
}

/** The URL of `transport`: a string as it is, an object read into one; throws ERR_INVALID_ARG. */
function transportUrl (transport) {
  if (typeof transport === 'string') return transport
  if (!isPlainObject(transport)) {
    throw invalid('must be a URL (redis://host:port) or an object ({ host, port }, { sentinels, name } or { cluster })')
  }
  const unknown = Object.keys(transport).filter((key) => !KEYS.includes(key))
  if (unknown.length > 0) throw invalid(`unknown field ${unknown.join(', ')} (it takes ${KEYS.join(', ')})`)
  const { host, sentinels, cluster, name, tls, db } = transport
  const kinds = [host !== undefined, sentinels !== undefined, cluster !== undefined].filter(Boolean).length
  if (kinds !== 1) throw invalid('give exactly one of host (one server), sentinels (with name) and cluster')
  if (tls !== undefined && host === undefined) throw invalid('tls is for one server (host): Sentinel and Cluster connections are plain TCP')
  if (cluster !== undefined) {
    if (db !== undefined) throw invalid('a Cluster has only database 0')
    return `redis+cluster://${credentials(transport)}${nodes(cluster, 6379, 'cluster')}`
  }
  if (sentinels !== undefined) {
    if (typeof name !== 'string' || name === '') throw invalid('sentinels need the name of their master')
    return `redis+sentinel://${credentials(transport)}${nodes(sentinels, 26379, 'sentinels')}/${encodeURIComponent(name)}${database(db)}`
  }
  if (name !== undefined) throw invalid('name is the master of sentinels')
  const scheme = tls === undefined || tls === false ? 'redis' : 'rediss'
  const query = scheme === 'rediss' ? tlsQuery(tls) : ''
  return `${scheme}://${credentials(transport)}${node(transport, 6379, 'transport')}${database(db)}${query}`
}

module.exports = { transportUrl }
