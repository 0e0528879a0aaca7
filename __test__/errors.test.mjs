import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const native = require('../native.js')
const { MemErrors, NATIVE_CODES, JS_CODES } = require('../lib/errors.js')

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
