'use strict'

/** Every `error.code` memsync produces. */
const MemErrors = Object.freeze({
  ERR_MAX_WRITERS: 'ERR_MAX_WRITERS',
  ERR_UNKNOWN_OPERATOR: 'ERR_UNKNOWN_OPERATOR',
  ERR_BAD_OPERATOR_ARG: 'ERR_BAD_OPERATOR_ARG',
  ERR_BAD_VALUE: 'ERR_BAD_VALUE',
  ERR_TYPE_MISMATCH: 'ERR_TYPE_MISMATCH',
  ERR_PATH_NOT_VIABLE: 'ERR_PATH_NOT_VIABLE',
  ERR_PATH_CONFLICT: 'ERR_PATH_CONFLICT',
  ERR_EMPTY_PATH: 'ERR_EMPTY_PATH',
  ERR_DOLLAR_FIELD: 'ERR_DOLLAR_FIELD',
  ERR_POSITIONAL: 'ERR_POSITIONAL',
  ERR_RENAME_INVALID: 'ERR_RENAME_INVALID',
  ERR_OVERFLOW: 'ERR_OVERFLOW',
  ERR_INVALID_NAME: 'ERR_INVALID_NAME',
  ERR_INVALID_ARG: 'ERR_INVALID_ARG',
  ERR_TIMEOUT: 'ERR_TIMEOUT',
  ERR_RPC_NOT_FOUND: 'ERR_RPC_NOT_FOUND',
  ERR_RPC_PEER_LOST: 'ERR_RPC_PEER_LOST',
  ERR_EVENTS_DROPPED: 'ERR_EVENTS_DROPPED',
  ERR_CHANGES_DROPPED: 'ERR_CHANGES_DROPPED',
  ERR_DIRECT_WRITE: 'ERR_DIRECT_WRITE',
  ERR_NO_STORAGE: 'ERR_NO_STORAGE',
  ERR_STALE_WRITE: 'ERR_STALE_WRITE',
  ERR_STOPPED: 'ERR_STOPPED',
  ERR_RENDEZVOUS: 'ERR_RENDEZVOUS',
  ERR_STORAGE: 'ERR_STORAGE',
  ERR_HTTP: 'ERR_HTTP'
})

function codedError (code, message) {
  const error = new Error(message)
  error.code = code
  return error
}

/**
 * The value of a native async call's outcome, `{"ok":value}`, or throws the coded error of
 * `{"code","message"}` (napi-rs loses custom codes on async rejections; see src/binding.rs).
 */
function settle (outcomeJson) {
  const outcome = JSON.parse(outcomeJson)
  if (outcome.code !== undefined) throw codedError(outcome.code, outcome.message)
  return outcome.ok
}

module.exports = { MemErrors, codedError, settle }
