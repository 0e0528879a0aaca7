// The history checker of the Redis fault rounds (issue 17), pure: no processes, no clock.
//
// Every writer pushes unique ids `<origin>:<seq>` (seq counting from 1 in each origin) onto `log`
// and increments `n` in the same patch, and the run records each patch's outcome: 'ok' (the
// promise resolved), 'rejected' (with its code) or 'unknown' (the writer died, or the outcome
// says nothing about whether the patch applied). `checkHistory` holds the final replicas against
// those outcomes.

/**
 * Codes that leave a patch's fate open: it stays queued and may still apply (docs/guarantees.md:
 * "A timeout does not cancel"; stop() rejects the patches it interrupts). Counted as unknown.
 */
export const INDETERMINATE_CODES = ['ERR_TIMEOUT', 'ERR_STOPPED']

/** Each rule the checker holds a history to, as it names it in a failure. */
export const RULES = {
  replicas: 'all replicas equal in data and version',
  shape: 'data is { log: [<origin>:<seq>, ...], n }',
  counter: 'n equals log.length',
  duplicate: 'no id more than once',
  lost: 'every acknowledged id present (durability: replicated)',
  rejected: 'no rejected id present',
  order: "each origin's ids in increasing seq order",
  unissued: 'no id without a recorded outcome, except from a killed writer'
}

/** `'w3:17'` as `{ origin: 'w3', seq: 17 }`, or null when it is not one. */
export function parseId (id) {
  if (typeof id !== 'string') return null
  const colon = id.lastIndexOf(':')
  const seq = Number(id.slice(colon + 1))
  if (colon <= 0 || !Number.isSafeInteger(seq) || seq < 1 || String(seq) !== id.slice(colon + 1)) return null
  return { origin: id.slice(0, colon), seq }
}

// A failure lists at most this many ids; its count says how many there were.
const SAMPLE = 10

/**
 * Checks one run. `outcomes`: `[{ id, status: 'ok' | 'rejected' | 'unknown', code? }]`, at most one
 * per id. `killed`: origins whose writer died, whose ids without an outcome count as unknown (its
 * last reports may not have left it). `replicas`: `[{ label, data, version }]`, every live replica of
 * every machine. `durability`: `'replicated'` fails on an acknowledged id that is missing; the
 * default mode counts those as `lost`.
 *
 * Returns `{ ok, failures: [{ rule, message, ids?, count? }], counts }`.
 */
export function checkHistory ({ outcomes, killed = [], replicas, durability = 'default' }) {
  const failures = []
  const fail = (rule, message, ids) => {
    failures.push(ids === undefined
      ? { rule, message }
      : { rule, message: `${message}: ${ids.slice(0, SAMPLE).join(', ')}${ids.length > SAMPLE ? ', ...' : ''} (${ids.length})`, ids: ids.slice(0, SAMPLE), count: ids.length })
  }
  const counts = { replicas: replicas.length, version: null, entries: 0, ok: 0, rejected: 0, unknown: 0, unknownApplied: 0, lost: 0 }
  if (replicas.length === 0) {
    fail('replicas', 'no replica to check')
    return { ok: false, failures, counts }
  }

  const [first] = replicas
  const firstJson = JSON.stringify(canonical(first.data))
  const differing = replicas.filter((r) => r.version !== first.version || JSON.stringify(canonical(r.data)) !== firstJson)
  if (differing.length > 0) {
    fail('replicas', `${describe(first)}; differing: ${differing.map((r) => `${describe(r)}${difference(first.data, r.data)}`).join('; ')}`)
  }
  counts.version = first.version

  const { log, n } = first.data ?? {}
  if (!Array.isArray(log)) {
    fail('shape', `log is ${JSON.stringify(log)?.slice(0, 100)}, not an array`)
    return { ok: false, failures, counts }
  }
  counts.entries = log.length
  if (n !== log.length) fail('counter', `n is ${n}, log.length ${log.length}`)

  const malformed = log.filter((id) => parseId(id) === null).map((id) => JSON.stringify(id))
  if (malformed.length > 0) fail('shape', 'log entries that are not <origin>:<seq>', malformed)

  const fate = new Map()
  for (const { id, status, code } of outcomes) {
    const indeterminate = status === 'rejected' && INDETERMINATE_CODES.includes(code)
    fate.set(id, indeterminate ? 'unknown' : status)
  }
  for (const status of fate.values()) counts[status]++

  const seen = new Map()
  for (const id of log) seen.set(id, (seen.get(id) ?? 0) + 1)
  const duplicates = [...seen].filter(([, times]) => times > 1).map(([id, times]) => `${id} x${times}`)
  if (duplicates.length > 0) fail('duplicate', 'ids present more than once', duplicates)

  const missing = [...fate].filter(([id, status]) => status === 'ok' && !seen.has(id)).map(([id]) => id)
  counts.lost = missing.length
  if (missing.length > 0 && durability === 'replicated') fail('lost', 'acknowledged ids missing', missing)

  const rejectedPresent = [...fate].filter(([id, status]) => status === 'rejected' && seen.has(id)).map(([id]) => id)
  if (rejectedPresent.length > 0) fail('rejected', 'rejected ids present', rejectedPresent)

  const dead = new Set(killed)
  const unissued = []
  for (const id of seen.keys()) {
    const status = fate.get(id)
    if (status === 'unknown') counts.unknownApplied++
    if (status !== undefined) continue
    const parsed = parseId(id)
    if (parsed === null) continue
    if (dead.has(parsed.origin)) {
      counts.unknown++
      counts.unknownApplied++
    } else {
      unissued.push(id)
    }
  }
  if (unissued.length > 0) fail('unissued', 'ids no live writer recorded', unissued)

  const lastSeq = new Map()
  const outOfOrder = []
  for (const id of log) {
    const parsed = parseId(id)
    if (parsed === null) continue
    const before = lastSeq.get(parsed.origin) ?? 0
    if (parsed.seq <= before) outOfOrder.push(`${id} after ${parsed.origin}:${before}`)
    lastSeq.set(parsed.origin, Math.max(before, parsed.seq))
  }
  if (outOfOrder.length > 0) fail('order', 'ids behind an earlier one of their origin', outOfOrder)

  return { ok: failures.length === 0, failures, counts }
}

/** The report as lines of text: each failure with its rule, then the counts. */
export function formatReport ({ failures, counts }) {
  const lines = failures.map(({ rule, message }) => `FAIL ${rule} (${RULES[rule]}): ${message}`)
  lines.push(`version ${counts.version}, ${counts.entries} entries on ${counts.replicas} replicas; ` +
    `${counts.ok} acknowledged (${counts.lost} missing), ${counts.rejected} rejected, ` +
    `${counts.unknown} unknown (${counts.unknownApplied} of them applied)`)
  return lines.join('\n')
}

function describe ({ label, data, version }) {
  const { log, n } = data ?? {}
  if (Array.isArray(log)) return `${label ?? '?'} v${version} n ${n}, ${log.length} ids`
  const json = JSON.stringify(data) ?? 'undefined'
  return `${label ?? '?'} v${version} ${json.length > 200 ? json.slice(0, 200) + '...' : json}`
}

/** Where the log of `other` first departs from that of `data`, and the ids only one of them has. */
function difference (data, other) {
  const [a, b] = [data?.log, other?.log]
  if (!Array.isArray(a) || !Array.isArray(b)) return ''
  let i = 0
  while (i < a.length && i < b.length && a[i] === b[i]) i++
  const sample = (ids) => `${ids.slice(0, SAMPLE).join(', ')}${ids.length > SAMPLE ? ', ...' : ''} (${ids.length})`
  const [inA, inB] = [new Set(a), new Set(b)]
  const onlyA = a.filter((id) => !inB.has(id))
  const onlyB = b.filter((id) => !inA.has(id))
  return ` (log first differs at [${i}]: ${a[i]} vs ${b[i]}` +
    `${onlyA.length > 0 ? `; missing here: ${sample(onlyA)}` : ''}${onlyB.length > 0 ? `; only here: ${sample(onlyB)}` : ''})`
}

/** `value` with object keys sorted: replicas may order keys differently after a rebase (docs/guarantees.md). */
function canonical (value) {
  if (Array.isArray(value)) return value.map(canonical)
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(Object.keys(value).sort().map((key) => [key, canonical(value[key])]))
}
