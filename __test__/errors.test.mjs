import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const native = require('../native.js')
const { MemErrors, NATIVE_CODES, JS_CODES } = require('../lib/errors.js')
const { parseEvents } = require('../lib/events.js')

const sorted = (codes) => [...codes].sort()

test('MemErrors lists exactly the codes the native side produces, and those of JS apart', () => {
  assert.deepEqual(sorted(NATIVE_CODES), sorted(native.errorCodes()))
  assert.deepEqual(JS_CODES.filter((code) => NATIVE_CODES.includes(code)), [], 'a JS-only code the native side produces too')
  assert.deepEqual(sorted(Object.keys(MemErrors)), sorted([...NATIVE_CODES, ...JS_CODES]))
  for (const [key, code] of Object.entries(MemErrors)) assert.equal(key, code)
})

test('index.d.ts declares every MemErrors code', () => {
  const typings = fs.readFileSync(new URL('../index.d.ts', import.meta.url), 'utf8')
  const declaration = typings.slice(typings.indexOf('export declare const MemErrors'))
  const declared = declaration.slice(0, declaration.indexOf('}')).match(/ERR_[A-Z_]+(?=:)/g)
  assert.deepEqual(sorted(declared), sorted(Object.keys(MemErrors)))
})

// patch, flush and drain are plain Node-API callbacks (src/node/direct.rs), not napi-rs functions:
// they check their arguments themselves.
test('the native calls made per patch refuse wrong arguments with a coded error', () => {
  const instance = native.createInstance(`errors-${process.pid}`, '{"n":0}', null, null)
  const refusals = [
    [() => native.patch(instance), /patch\(instance, updateJson\): missing arguments/],
    [() => native.patch(instance, 5), /updateJson must be a string/],
    [() => native.patch({}, '{}'), /instance is not a MemSync instance/],
    [() => native.flush(), /flush\(instance\): missing arguments/],
    [() => native.drain('instance'), /drain\(instance\): instance is not a MemSync instance/]
  ]
  for (const [call, message] of refusals) {
    assert.throws(call, (error) => error instanceof Error && error.code === MemErrors.ERR_INVALID_ARG && message.test(error.message))
  }
  assert.throws(() => native.patch(instance, '{"$inc":{"n":"x"}}'), { code: MemErrors.ERR_BAD_VALUE })
  // Text beyond ASCII crosses both ways unchanged; a lone surrogate arrives as U+FFFD.
  const events = parseEvents(native.patch(instance, '{"$set":{"s":"é😀\ud800","n":1}}'))
  assert.deepEqual(events.at(-1)[3].toArray(), [['s', ['n'], 1], ['s', ['s'], 'é😀\ufffd']])
  native.flush(instance)
  assert.deepEqual(parseEvents(native.drain(instance)), [])
})
