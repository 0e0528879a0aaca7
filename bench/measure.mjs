// Timing helpers for the benchmarks: medians over repeated samples, measured in the same run.
import { performance } from 'node:perf_hooks'

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

/** Formats nanoseconds for the table. */
export function formatNs (ns) {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} µs`
  return `${ns.toFixed(1)} ns`
}
