'use strict'
// The own patches of an instance that wait for the host's order, oldest first. A patch's sequence
// number is larger than every earlier patch's, and the host orders an instance's patches in that
// order, so almost every one settles at the front: a Map paid a hash lookup to add it, another to
// remove it and a rehash now and then (3% of a writer's profile with 20,000 patches in flight).
//
// A waiting patch is its promise's two functions and its deadline in parallel arrays, not an
// object of its own: with 20,000 patches in flight, every object a patch keeps alive is copied by
// each young-generation collection until it is promoted.

/** Entries taken from the front before the arrays drop them. */
const COMPACT_AFTER = 1024

class WaitingPatches {
  #seqs = []
  #resolves = []
  #rejects = []
  /** Milliseconds on performance.now()'s clock; numbers only, so V8 stores them unboxed. */
  #deadlines = []
  /** The first entry still waiting (the arrays' length when none waits): those before it were
   * taken. */
  #head = 0

  /**
   * Adds patch `seq`, which must be newer than every patch added before, with its promise's
   * `resolve` and `reject` and the time after which it expires.
   */
  add (seq, resolve, reject, deadline) {
    const newest = this.#seqs.length > 0 ? this.#seqs[this.#seqs.length - 1] : undefined
    if (newest !== undefined && seq <= newest) {
      throw new Error(`memsync: patch ${seq} waits after patch ${newest}`)
    }
    this.#seqs.push(seq)
    this.#resolves.push(resolve)
    this.#rejects.push(reject)
    this.#deadlines.push(deadline)
  }

  /** The oldest waiting patch's sequence number, or undefined when none waits. */
  oldest () {
    return this.#head === this.#seqs.length ? undefined : this.#seqs[this.#head]
  }

  /** The oldest waiting patch's deadline, or undefined when none waits. */
  oldestDeadline () {
    return this.#head === this.#seqs.length ? undefined : this.#deadlines[this.#head]
  }

  /**
   * Resolves patch `seq`'s promise, or rejects it with `error` when one is given, and forgets the
   * patch; false when it does not wait.
   */
  settle (seq, error) {
    const at = this.#seqs[this.#head] === seq ? this.#head : this.#find(seq)
    if (at < 0 || this.#resolves[at] === null) return false
    const settle = error === undefined ? this.#resolves[at] : this.#rejects[at]
    this.#resolves[at] = null
    this.#rejects[at] = null
    while (this.#head < this.#resolves.length && this.#resolves[this.#head] === null) this.#head++
    if (this.#head >= COMPACT_AFTER && this.#head * 2 >= this.#resolves.length) {
      for (const array of [this.#seqs, this.#resolves, this.#rejects, this.#deadlines]) array.splice(0, this.#head)
      this.#head = 0
    }
    if (error === undefined) settle()
    else settle(error)
    return true
  }

  /** The sequence numbers of the waiting patches, oldest first. */
  seqs () {
    const seqs = []
    for (let i = this.#head; i < this.#seqs.length; i++) {
      if (this.#resolves[i] !== null) seqs.push(this.#seqs[i])
    }
    return seqs
  }

  /** The index of `seq` at or after the head (the sequence numbers only grow), or -1. */
  #find (seq) {
    let low = this.#head
    let high = this.#seqs.length - 1
    while (low <= high) {
      const middle = (low + high) >>> 1
      const found = this.#seqs[middle]
      if (found === seq) return middle
      if (found < seq) low = middle + 1
      else high = middle - 1
    }
    return -1
  }
}

module.exports = { WaitingPatches }
