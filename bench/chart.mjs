// The PNG chart of a run: grouped bars of memsync beside the raw relay, Redis and JSON.parse
// (median, with a min–max whisker), drawn by Vega-Lite to SVG and rasterised by resvg; no
// browser, canvas or system library. Log scales: the systems differ by orders of magnitude.
import { Resvg } from '@resvg/resvg-js'
import * as vega from 'vega'
import { compile } from 'vega-lite'

const SYSTEMS = ['memsync', 'raw relay (Rust)', 'Redis pub/sub', 'JSON.parse']
const usable = (section) => section !== undefined && section.error === undefined && section.skipped === undefined

/** One bar: `value` a { median, min, max } summary, scaled by `unit`. */
const bar = (group, system, value, unit) => ({ group, system, median: value.median / unit, min: value.min / unit, max: value.max / unit })

function latencyBars ({ latency, relay, redis }) {
  const bars = []
  for (const [key, group] of [['p50', 'p50'], ['p99', 'p99'], ['p999', 'p99.9']]) {
    if (usable(latency)) bars.push(bar(group, 'memsync', latency[key], 1e3))
    if (usable(relay) && relay.latency[key]) bars.push(bar(group, 'raw relay (Rust)', relay.latency[key], 1e3))
    if (usable(redis?.latency)) bars.push(bar(group, 'Redis pub/sub', redis.latency[key], 1e3))
  }
  return bars
}

function throughputBars ({ throughput, relay, redis }) {
  const bars = []
  for (const writers of [1, 2, 4]) {
    const group = `${writers} writer${writers > 1 ? 's' : ''}`
    const own = usable(throughput) && throughput.find((t) => t.writers === writers && t.processes === writers + 2)
    const raw = usable(relay) && relay.throughput.find((t) => t.writers === writers)
    const theirs = usable(redis?.throughput) && redis.throughput.find((t) => t.writers === writers)
    if (own) bars.push(bar(group, 'memsync', own, 1))
    if (raw) bars.push(bar(group, 'raw relay (Rust)', raw, 1))
    if (theirs) bars.push(bar(group, 'Redis pub/sub', theirs, 1))
  }
  return bars
}

function joinBars ({ join }) {
  if (!usable(join)) return []
  return join.sizes.flatMap((size) => {
    const group = `${Math.round(size.bytes / 1e6)} MB`
    return [bar(group, 'memsync', size.join, 1e6), bar(group, 'JSON.parse', size.parse, 1e6)]
  })
}

/** A grouped bar panel with min–max whiskers. */
function panel (title, axis, values) {
  const x = { field: 'group', type: 'nominal', title: null, sort: null, axis: { labelAngle: 0 } }
  const xOffset = { field: 'system', sort: null } // the order of the values: memsync first
  // On a log scale a bar cannot start at 0: they start at the power of ten below the lowest value.
  const floor = 10 ** Math.floor(Math.log10(Math.min(...values.map((v) => v.min))))
  return {
    title,
    width: 260,
    height: 260,
    data: { values },
    layer: [
      {
        mark: 'bar',
        encoding: {
          x,
          xOffset,
          y: { field: 'median', type: 'quantitative', title: axis, scale: { type: 'log' } },
          y2: { datum: floor },
          color: { field: 'system', type: 'nominal', sort: SYSTEMS, scale: { domain: SYSTEMS }, title: null }
        }
      },
      {
        mark: { type: 'rule', color: 'black' },
        encoding: { x, xOffset, y: { field: 'min', type: 'quantitative' }, y2: { field: 'max' } }
      }
    ]
  }
}

/** The chart of `results` as PNG bytes. */
export async function chartPng (results, caption) {
  const panels = [
    panel('Propagation A → hub → B', 'one-way latency (µs, log)', latencyBars(results)),
    panel('End to end, a reader and the hub', 'messages per second (log)', throughputBars(results)),
    panel('Join vs JSON.parse of the same text', 'ms (log)', joinBars(results))
  ].filter((p) => p.data.values.length > 0)
  const spec = compile({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'memsync benchmarks: median, whiskers min–max over runs', subtitle: caption },
    hconcat: panels,
    // Each panel offsets only the systems it shows; the colours stay shared.
    resolve: { scale: { xOffset: 'independent' } },
    config: { font: 'DejaVu Sans', legend: { orient: 'bottom' } }
  }).spec
  const view = new vega.View(vega.parse(spec), { renderer: 'none' })
  const svg = await view.toSVG()
  view.finalize()
  return new Resvg(svg, { background: 'white', fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng()
}
