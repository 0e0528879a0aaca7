// Timing helpers for the benchmarks: medians over repeated samples, measured in the same run.
import { performance } from 'node:perf_hooks'

/**
 * process.hrtime.bigint() as a Number of nanoseconds: CLOCK_MONOTONIC on Linux, one clock for
 * every process of the machine, so times taken in different processes compare.
 */
export const now = () => Number(process.hrtime.bigint())

/** Runs and awaits `fn` `iterations` times per sample; ns per call: { median, min, max }. */
export async function sampleAsync (fn, { samples = 15, iterations = 20000 } = {}) {
  for (let i = 0; i < iterations; i++) await fn()
  const perCall = []
  for (let s = 0; s < samples; s++) {
    const start = performance.now()
    for (let i = 0; i < iterations; i++) await fn()
    perCall.push(((performance.now() - start) * 1e6) / iterations)
  }
  return summarize(perCall)
}

export function summarize (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
  return { median, min: sorted[0], max: sorted[sorted.length - 1], samples: sorted.length }
}

/** The nearest-rank percentile (`p` in 0..1) of ascending `sorted`. */
function percentile (sorted, p) {
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length)))
  return sorted[rank - 1]
}

/** p50, p99 and p99.9 of one run's one-way times. */
export function latencyPercentiles (times) {
  const sorted = [...times].sort((a, b) => a - b)
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), p999: percentile(sorted, 0.999), samples: sorted.length }
}

/** Rejects with `message` when `promise` has not settled within `ms`. */
export function withTimeout (promise, ms, message) {
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${message}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Formats nanoseconds for the table. */
export function formatNs (ns) {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} µs`
  return `${ns.toFixed(1)} ns`
}

export const formatRate = (n) => `${Math.round(n).toLocaleString('en')}/s`
export const formatMs = (ns) => `${(ns / 1e6).toFixed(2)} ms`
export const formatMb = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MB`

/**
 * Runs `send()` (a promise) `count` times with at most `limit` unsettled at once; resolves with
 * the time the last one settled.
 */
export function keepInFlight (count, limit, send) {
  return new Promise((resolve, reject) => {
    let sent = 0
    let done = 0
    const onDone = () => {
      done++
      if (done === count) resolve(now())
      else fire()
    }
    const fire = () => {
      while (sent - done < limit && sent < count) {
        sent++
        send().then(onDone, reject)
      }
    }
    fire()
  })
}
