'use strict'
// `mem.changes()`: an async iterator of the patches applied here. A change is delivered to each
// iterator in order; a consumer slower than the patches has `bufferSize` of them waiting at most.
// One more ends the iterator with ERR_CHANGES_DROPPED after the buffered ones: a change is never
// skipped silently, and memory stays bounded (docs/guarantees.md).

const { MemErrors, codedError } = require('./errors.js')

const DEFAULT_BUFFER_SIZE = 1024

class ChangeFeed {
  #buffer = []
  #bufferSize
  /** The resolvers of next() calls made while the buffer was empty, in call order. */
  #waiters = []
  /** Why the feed ended: null while open, true when done, else the error to throw. */
  #end = null
  #onClose

  /** `onClose` unsubscribes the feed; called once, however it ends. */
  constructor (bufferSize, onClose) {
    this.#bufferSize = bufferSize
    this.#onClose = onClose
  }

  /** A change, from the instance. */
  push (change) {
    if (this.#end !== null) return
    if (this.#waiters.length > 0) {
      this.#waiters.shift().resolve({ value: change, done: false })
    } else if (this.#buffer.length < this.#bufferSize) {
      this.#buffer.push(change)
    } else {
      this.lose(`the consumer fell ${this.#bufferSize} changes behind (bufferSize); later ones were not kept`)
    }
  }

  /** Ends the feed with ERR_CHANGES_DROPPED, after the changes it holds: `why` changes were lost. */
  lose (why) {
    this.close(codedError(MemErrors.ERR_CHANGES_DROPPED, `changes(): ${why}. Read mem.data for the current state, and call changes() again to follow it`))
  }

  /** Ends the feed: `error` is thrown by next() once the buffer is read; without one it is done. */
  close (error) {
    if (this.#end !== null) return
    this.#end = error ?? true
    this.#onClose()
    for (const waiter of this.#waiters.splice(0)) this.#settle(waiter)
  }

  #settle ({ resolve, reject }) {
    if (this.#end === true) {
      resolve({ value: undefined, done: true })
    } else {
      reject(this.#end)
      // Thrown once; afterwards the iterator is done, as a generator's would be.
      this.#end = true
    }
  }

  next () {
    if (this.#buffer.length > 0) return Promise.resolve({ value: this.#buffer.shift(), done: false })
    return new Promise((resolve, reject) => {
      if (this.#end !== null) this.#settle({ resolve, reject })
      else this.#waiters.push({ resolve, reject })
    })
  }

  /** `break` out of `for await`: unsubscribes at once, dropping what was buffered. */
  return () {
    this.#buffer.length = 0
    this.close()
    return Promise.resolve({ value: undefined, done: true })
  }

  [Symbol.asyncIterator] () {
    return this
  }
}

module.exports = { ChangeFeed, DEFAULT_BUFFER_SIZE }
