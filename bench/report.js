'use strict'
// report.js: the results as Markdown: figures, tables, a group, the verdicts.

function ns (value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–'
  if (value < 10) return `${value.toFixed(2)} ns`
  if (value < 1000) return `${Math.round(value)} ns`
  if (value < 1e6) return `${(value / 1000).toPrecision(3)} µs`
  return `${(value / 1e6).toPrecision(3)} ms`
}
const us = (n) => (!Number.isFinite(n) ? '–' : n >= 1e5 ? (n / 1000).toFixed(0) : n >= 1e4 ? (n / 1000).toFixed(1) : (n / 1000).toFixed(2))
const ratio = (r) => (!Number.isFinite(r) ? '–' : r >= 10 ? `${r.toFixed(1)}×` : `${r.toFixed(2)}×`)
const range = (lo, hi) => `${lo.toFixed(2)}–${hi.toFixed(2)}`
const target = (t) => (t === undefined || t === null ? '–' : `≤ ${t}×`)
const result = (v) => (v === 'MISS' ? '**MISS**' : v || '–')
const size = (bytes) => (bytes >= 1024 ? `${bytes / 1024} KB` : `${bytes} B`)

/** A Markdown table; columns are [title, align] with align 'l' or 'r'. */
function table (columns, rows) {
  const cells = [columns.map(([t]) => t), ...rows.map((r) => r.map(String))]
  const widths = columns.map((_, i) => Math.max(3, ...cells.map((r) => r[i].length)))
  const line = (r) => `| ${r.map((c, i) => (columns[i][1] === 'r' ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`
  const rule = `| ${widths.map((w, i) => (columns[i][1] === 'r' ? '-'.repeat(w - 1) + ':' : '-'.repeat(w))).join(' | ')} |`
  return [line(cells[0]), rule, ...cells.slice(1).map(line)].join('\n')
}

/** Right-aligned columns with these titles. */
const right = (titles) => titles.map((t) => [t, 'r'])

const pairTable = (results) => table(
  [['case', 'l'], ['size', 'r'], ['ns/op', 'r'], ['floor ns/op', 'r'], ['ratio', 'r'], ['min–max over rounds', 'r'], ['target', 'r'], ['result', 'l']],
  results.map((r) => [r.name, size(r.bytes), ns(r.ns), ns(r.floorNs), ratio(r.ratio), range(r.ratioMin, r.ratioMax), target(r.target), result(r.verdict)])
)

const sweepTable = (results) => table(
  [['case', 'l'], ...right(['best (at)', 'worst (at)', 'sweep spread', 'confirmed worst ÷ best', 'min–max', '0', '1–15', '16–31', '32–63', 'target']), ['result', 'l']],
  results.map((r) => [
    r.name, `${ns(r.best.ns)} (${r.best.arg})`, `${ns(r.worst.ns)} (${r.worst.arg})`, ratio(r.sweepRatio), ratio(r.ratio),
    range(r.ratioMin, r.ratioMax), ...r.buckets.map((b) => ns(b.median)), target(r.target), result(r.verdict)
  ])
)

const copyTable = (results) => table(
  [['GLIBC_TUNABLES', 'l'], ['size', 'r'], ['copy', 'l'], ...right(['d=0', '1–15', '16–31', '32–63', '64', 'best (d)', 'worst (d)',
    'worst ÷ best', 'confirmed', 'min–max', '÷ memcpy, median', '÷ memcpy, max (d)']), ['result', 'l']],
  results.map((r) => [
    r.tunables, size(r.size), r.fn, ...r.buckets.map((b) => ns(b.median)), `${ns(r.best.ns)} (${r.best.d})`, `${ns(r.worst.ns)} (${r.worst.d})`,
    ratio(r.sweepRatio), ratio(r.ratio), range(r.ratioMin, r.ratioMax),
    r.fn === 'memcpy' ? '–' : ratio(r.vsMemcpyMedian), r.fn === 'memcpy' ? '–' : `${ratio(r.vsMemcpyMax)} (${r.vsMemcpyMaxAt})`, result(r.verdict)
  ])
)

function formatGroup (g) {
  const out = [`### ${g.title}`, '']
  if (g.error) return [...out, `Failed: ${g.error}`, ''].join('\n')
  if (g.skipped) return [...out, `Skipped: ${g.skipped}`, ''].join('\n')
  for (const [kind, format] of [['pair', pairTable], ['sweep', sweepTable], ['copy', copyTable]]) {
    const rows = g.results.filter((r) => r.kind === kind)
    if (rows.length) out.push(format(rows), '')
  }
  for (const line of g.legend || []) out.push(`- ${line}`)
  out.push('')
  return out.join('\n')
}

// The verdicts of the kinds describeVerdict knows (a group's own records, e.g. 'handoff', give theirs as pairs).
const verdicts = (groups) => groups.flatMap((g) => (g.results || []).filter((r) => ['pair', 'sweep', 'copy'].includes(r.kind) && (r.verdict === 'PASS' || r.verdict === 'MISS')))

function describeVerdict (r) {
  const spread = (best, worst, at) => `worst ÷ best ${ratio(r.ratio)} (${range(r.ratioMin, r.ratioMax)}; worst at ${at}${worst.at}: ${ns(worst.ns)}, best at ${at}${best.at}: ${ns(best.ns)})`
  const figure = r.kind === 'pair'
    ? `${ratio(r.ratio)} of its floor (${range(r.ratioMin, r.ratioMax)}; ${ns(r.ns)} vs ${ns(r.floorNs)})`
    : r.kind === 'sweep'
      ? spread({ at: r.best.arg, ns: r.best.ns }, { at: r.worst.arg, ns: r.worst.ns }, `${r.argName} `)
      : r.criterion === 'vs-memcpy'
        ? `no trap in memcpy here, so held to memcpy: up to ${ratio(r.vsMemcpyMax)} of memcpy (at d=${r.vsMemcpyMaxAt}; median over d ${ratio(r.vsMemcpyMedian)}); its own ${spread({ at: r.best.d, ns: r.best.ns }, { at: r.worst.d, ns: r.worst.ns }, 'd=')}`
        : `memcpy has the trap here: ${spread({ at: r.best.d, ns: r.best.ns }, { at: r.worst.d, ns: r.worst.ns }, 'd=')}`
  return `- ${r.verdict === 'MISS' ? '**MISS**' : 'PASS'} ${r.name}: ${figure}, target ${target(r.target)}`
}

module.exports = { ns, us, ratio, range, size, table, right, formatGroup, verdicts, describeVerdict }
