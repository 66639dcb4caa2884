#!/usr/bin/env node
'use strict'
/*
 * chart.js: the handoff benchmark's latencies, or the latest-state reads'
 * (--latest), as an SVG chart (hand-written, no dependencies).
 *
 *   npm run bench -- handoff --save results.json (C's floors included)
 *   node bench/chart.js results.json > handoff.svg
 *   node bench/chart.js results.json --out docs/handoff.svg
 *   npm run bench -- latest --save latest.json
 *   node bench/chart.js latest.json --latest --out docs/latest.svg
 *
 * One panel per payload size; one row per writer → reader and transport; a
 * bar to the median and a whisker on to the p99, on a logarithmic axis (the
 * rows span three orders of magnitude, and equal ratios look equal on it).
 * Section rows are blue, socket rows grey; the figure after each section row
 * is Unix socket ÷ this (the issue's ratio, higher is better).
 */
const fs = require('node:fs')
const { parseArgs } = require('node:util')

const { WHO } = require('./handoff')
const ORDER = ['node', 'php', 'c']

function usage () {
  process.stderr.write('usage: node bench/chart.js RESULTS.json [--latest] [--out FILE.svg]\n' +
    '  RESULTS.json: written by npm run bench -- handoff (or latest) --save RESULTS.json\n')
  process.exit(2)
}

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

function fmtUs (ns) {
  const us = ns / 1000
  if (us >= 1000) return `${(us / 1000).toPrecision(2)} ms`
  return `${us >= 100 ? us.toFixed(0) : us >= 10 ? us.toFixed(1) : us.toFixed(2)} µs`
}

/** Rows of the chart from the saved document: [{ size, rows: [...] }]. */
function collect (doc) {
  const cases = (doc.groups || []).flatMap((g) => (g.results || []).filter((r) => r.kind === 'handoff'))
  if (!cases.length) throw new Error('no handoff results in this file (run: npm run bench -- handoff --save FILE)')
  const sizes = [...new Set(cases.map((c) => c.bytes))].sort((a, b) => a - b)
  return sizes.map((bytes) => {
    const rows = []
    for (const c of cases.filter((k) => k.bytes === bytes).sort((a, b) => ORDER.indexOf(a.writer) - ORDER.indexOf(b.writer))) {
      for (const t of c.transports) {
        const unix = c.comparisons.find((k) => k.id === t.id && k.kind === 'socket')
        const group = WHO[t.who || c.writer] || c.writer
        // the C floors run in every case: once per size is enough for a chart
        if (rows.some((r) => r.group === group && r.label === t.text.replace(/`/g, ''))) continue
        rows.push({
          group,
          label: t.text.replace(/`/g, ''),
          shm: t.transport === 'shm',
          median: t.median,
          p99: t.p99,
          ratio: unix ? unix.round : null,
          target: unix ? unix.target : null,
          verdict: unix ? unix.verdict : null
        })
      }
    }
    // Each group's rows together (a case lists its C-reader row between its Node-reader rows).
    const groups = [...new Set(rows.map((r) => r.group))]
    return { bytes, rows: rows.sort((a, b) => groups.indexOf(a.group) - groups.indexOf(b.group)) }
  })
}

/** The latest-state reads: one panel per size; section reads blue, asking grey, floors light. */
function collectLatest (doc) {
  const cases = (doc.groups || []).flatMap((g) => (g.results || []).filter((r) => r.kind === 'latest'))
  if (!cases.length) throw new Error('no latest results in this file (run: npm run bench -- latest --save FILE)')
  return cases.sort((a, b) => a.bytes - b.bytes).map((c) => {
    const read = c.stats.find((s) => s.id === 'read')
    return {
      bytes: c.bytes,
      rows: c.stats.map((s) => ({
        group: s.floor ? 'floors (copies in this process)' : ['read', 'readInto'].includes(s.id) ? 'Node reads the section PHP published' : 'Node asks for the same bytes',
        label: s.text.replace(/`/g, '').replace(/^floor: /, ''),
        shm: ['read', 'readInto'].includes(s.id),
        floor: s.floor,
        median: s.median,
        p99: s.p99,
        ratio: null,
        figure: s.floor || s.id === 'read' ? '' : ` · ${(s.median / read.median).toFixed(s.median / read.median >= 10 ? 0 : 2)}× read()`
      }))
    }
  })
}

const MODES = {
  handoff: { collect, title: 'Handoff latency, one way: publish() → data in the reader\'s hands (median bar, p99 whisker)', key: '"Unix ÷ this": how many times faster than the Unix socket' },
  latest: { collect: collectLatest, title: 'Reading the latest state a PHP process published: section vs asking PHP or Redis (median bar, p99 whisker)', key: '"× read()": how many times slower than section.read()' }
}

function chart (doc, mode = 'handoff') {
  const panels = MODES[mode].collect(doc)
  const all = panels.flatMap((p) => p.rows)
  const lo = 10 ** Math.floor(Math.log10(Math.min(...all.map((r) => r.median)) / 1000))
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...all.map((r) => r.p99)) / 1000))
  const W = 1100
  const left = 300 // labels
  const right = 330 // figures after the bars
  const plotW = W - left - right
  const rowH = 20
  const groupGap = 10
  const xOf = (ns) => left + plotW * (Math.log10(Math.max(ns / 1000, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))

  const out = []
  let y = 0
  const m = doc.machine || {}
  const title = MODES[mode].title
  const sub = [m.cpu && `${m.cpu.model}${m.cpu.hypervisor ? ' (VM)' : ''}, ${m.cpu.cores} cores`, m.node && `Node ${m.node}`,
    m.loadavg && `load ${m.loadavg.join(' ')}`, m.date && m.date.slice(0, 10)].filter(Boolean).join(' · ')
  out.push(`<text x="16" y="${y += 26}" font-size="16" font-weight="bold">${esc(title)}</text>`)
  out.push(`<text x="16" y="${y += 20}" font-size="12" fill="#555">${esc(sub)}</text>`)
  y += 14

  for (const panel of panels) {
    const top = y
    out.push(`<text x="16" y="${y += 18}" font-size="14" font-weight="bold">${panel.bytes / 1024} KB</text>`)
    y += 8
    const plotTop = y
    // rows
    let group = null
    const bars = []
    for (const r of panel.rows) {
      if (r.group !== group) {
        if (group !== null) y += groupGap
        group = r.group
        out.push(`<text x="16" y="${y + 14}" font-size="12" font-weight="bold" fill="#333">${esc(group)}</text>`)
        y += rowH
      }
      bars.push({ r, y })
      y += rowH
    }
    const plotBottom = y
    // grid: 1, 2, 5 × 10^k µs; 2 and 5 labelled only where a decade is wide enough
    const decadeW = plotW / Math.log10(hi / lo)
    for (let decade = lo; decade <= hi; decade *= 10) {
      for (const k of [1, 2, 5]) {
        const v = decade * k
        if (v > hi) break
        const gx = xOf(v * 1000)
        out.push(`<line x1="${gx.toFixed(1)}" y1="${plotTop}" x2="${gx.toFixed(1)}" y2="${plotBottom}" stroke="${k === 1 ? '#bbb' : '#e4e4e4'}" stroke-width="1"/>`)
        if (k === 1 || decadeW >= 160) {
          const text = v >= 1000 ? `${v / 1000} ms` : `${v} µs`
          out.push(`<text x="${gx.toFixed(1)}" y="${plotBottom + 14}" font-size="10" fill="#666" text-anchor="middle">${text}</text>`)
        }
      }
    }
    for (const { r, y: ry } of bars) {
      const x0 = xOf(lo * 1000)
      const xm = xOf(r.median)
      const xp = xOf(r.p99)
      const fill = r.shm ? '#2f6fb3' : r.floor ? '#c9c9c9' : '#8c8c8c'
      out.push(`<text x="${left - 8}" y="${ry + 14}" font-size="12" text-anchor="end">${esc(r.label)}</text>`)
      out.push(`<rect x="${x0.toFixed(1)}" y="${ry + 4}" width="${Math.max(1, xm - x0).toFixed(1)}" height="${rowH - 8}" fill="${fill}"><title>${esc(`${r.group}, ${r.label}: median ${fmtUs(r.median)}, p99 ${fmtUs(r.p99)}`)}</title></rect>`)
      out.push(`<line x1="${xm.toFixed(1)}" y1="${ry + rowH / 2}" x2="${xp.toFixed(1)}" y2="${ry + rowH / 2}" stroke="${fill}" stroke-width="1.5"/>`)
      out.push(`<line x1="${xp.toFixed(1)}" y1="${ry + 6}" x2="${xp.toFixed(1)}" y2="${ry + rowH - 6}" stroke="${fill}" stroke-width="1.5"/>`)
      let figure = `${fmtUs(r.median)} · p99 ${fmtUs(r.p99)}${r.figure || ''}`
      if (r.ratio !== null) figure += ` · Unix ÷ this ${r.ratio.toFixed(r.ratio >= 10 ? 1 : 2)}×`
      const verdict = r.verdict ? `${r.verdict} ≥ ${r.target}×` : ''
      out.push(`<text x="${W - right + 8}" y="${ry + 14}" font-size="11" fill="#333">${esc(figure)}<tspan dx="6" fill="${r.verdict === 'MISS' ? '#b00020' : '#1b7f3b'}" font-weight="bold">${esc(verdict)}</tspan></text>`)
    }
    y = plotBottom + 24
    out.push(`<rect x="8" y="${top}" width="${W - 16}" height="${y - top}" fill="none" stroke="#ddd"/>`)
    y += 12
  }
  out.push(`<rect x="16" y="${y}" width="12" height="10" fill="#2f6fb3"/><text x="34" y="${y + 9}" font-size="11">section (shared memory)</text>`)
  out.push(`<rect x="200" y="${y}" width="12" height="10" fill="#8c8c8c"/><text x="218" y="${y + 9}" font-size="11">socket</text>`)
  out.push(`<text x="290" y="${y + 9}" font-size="11" fill="#555">bar: median · whisker: p99 · logarithmic axis · same processes, interleaved rounds · ${esc(MODES[mode].key)}</text>`)
  y += 24
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" viewBox="0 0 ${W} ${y}" font-family="Helvetica, Arial, sans-serif">\n` +
    `<rect width="${W}" height="${y}" fill="#fff"/>\n${out.join('\n')}\n</svg>\n`
}

function main () {
  let parsed
  try {
    parsed = parseArgs({ options: { out: { type: 'string' }, latest: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true })
  } catch {
    usage()
  }
  const { values, positionals } = parsed
  if (values.help || positionals.length !== 1) usage()
  const svg = chart(JSON.parse(fs.readFileSync(positionals[0], 'utf8')), values.latest ? 'latest' : 'handoff')
  if (values.out) fs.writeFileSync(values.out, svg)
  else process.stdout.write(svg)
}

if (require.main === module) {
  try {
    main()
  } catch (error) {
    process.stderr.write(`chart: ${error.message}\n`)
    process.exit(1)
  }
}

module.exports = { chart }
