'use strict'

// Every `error.code` memsync produces, in two lists: the native side's (src/error.rs `Code`,
// which `native.errorCodes()` returns) and those only this JavaScript produces.
// __test__/errors.test.mjs fails when a list and the code disagree.
const NATIVE_CODES = [
  'ERR_UNKNOWN_OPERATOR',
  'ERR_BAD_OPERATOR_ARG',
  'ERR_BAD_VALUE',
  'ERR_TYPE_MISMATCH',
  'ERR_PATH_NOT_VIABLE',
  'ERR_PATH_CONFLICT',
  'ERR_EMPTY_PATH',
  'ERR_DOLLAR_FIELD',
  'ERR_POSITIONAL',
  'ERR_RENAME_INVALID',
  'ERR_OVERFLOW',
  'ERR_INVALID_NAME',
  'ERR_INVALID_ARG',
  'ERR_STORAGE',
  'ERR_RENDEZVOUS',
  'ERR_STALE_WRITE',
  'ERR_MAX_WRITERS',
  'ERR_RPC_NOT_FOUND',
  'ERR_RPC_PEER_LOST',
  'ERR_HTTP',
  'ERR_INTERNAL',
  'ERR_TRANSPORT',
  'ERR_PENDING_LIMIT'
]

const JS_CODES = [
  'ERR_TIMEOUT',
  'ERR_EVENTS_DROPPED',
  'ERR_NO_STORAGE',
  'ERR_STOPPED',
  'ERR_DIRECT_WRITE',
  'ERR_CHANGES_DROPPED'
]

/** Every `error.code` memsync produces. */
const MemErrors = Object.freeze(Object.fromEntries([...NATIVE_CODES, ...JS_CODES].map((code) => [code, code])))

function codedError (code, message) {
  const error = new Error(message)
  error.code = code
  return error
}

/**
 * The value of a native async call's outcome, `{"ok":value}`, or throws the coded error of
 * `{"code","message"}` (napi-rs loses custom codes on async rejections; see src/node/binding.rs).
 */
function settle (outcomeJson) {
  const outcome = JSON.parse(outcomeJson)
  if (outcome.code !== undefined) throw codedError(outcome.code, outcome.message)
  return outcome.ok
}

module.exports = { MemErrors, NATIVE_CODES, JS_CODES, codedError, settle }
