'use strict'
// The own patches of an instance that wait for the host's order, oldest first. A patch's sequence
// number is larger than every earlier patch's, and the host orders an instance's patches in that
// order, so almost every one settles at the front: a Map paid a hash lookup to add it, another to
// remove it and a rehash now and then (3% of a writer's profile with 20,000 patches in flight).

/** Entries taken from the front before the arrays drop them. */
const COMPACT_AFTER = 1024

class WaitingPatches {
  #seqs = []
  #waiters = []
  /** The first entry still waiting (the arrays' length when none waits): those before it were
   * taken. */
  #head = 0

  /** Adds the waiter of patch `seq`, which must be newer than every patch added before. */
  add (seq, waiter) {
    if (this.#seqs.length > 0 && seq <= this.#seqs[this.#seqs.length - 1]) {
      throw new Error(`memsync: patch ${seq} waits after patch ${this.#seqs[this.#seqs.length - 1]}`)
    }
    this.#seqs.push(seq)
    this.#waiters.push(waiter)
  }

  /** The oldest waiting patch as `[seq, waiter]`, or undefined when none waits. */
  oldest () {
    return this.#head === this.#seqs.length ? undefined : [this.#seqs[this.#head], this.#waiters[this.#head]]
  }

  /** Removes and returns the waiter of patch `seq`; undefined when it does not wait. */
  take (seq) {
    const at = this.#seqs[this.#head] === seq ? this.#head : this.#find(seq)
    const waiter = at < 0 ? null : this.#waiters[at]
    if (waiter === null) return undefined
    this.#waiters[at] = null
    while (this.#head < this.#waiters.length && this.#waiters[this.#head] === null) this.#head++
    if (this.#head >= COMPACT_AFTER && this.#head * 2 >= this.#waiters.length) {
      this.#seqs.splice(0, this.#head)
      this.#waiters.splice(0, this.#head)
      this.#head = 0
    }
    return waiter
  }

  /** The sequence numbers of the waiting patches, oldest first. */
  seqs () {
    const seqs = []
    for (let i = this.#head; i < this.#seqs.length; i++) {
      if (this.#waiters[i] !== null) seqs.push(this.#seqs[i])
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
