// The two exposition formats /metrics can answer in, and the choice between them from a
// scrape's Accept header.
import { openMetricsContentType, prometheusContentType } from 'prom-client'

/** `prometheus`: text format 0.0.4; `openmetrics`: OpenMetrics 1.0 text. */
export type ExpositionFormat = 'prometheus' | 'openmetrics'

/** The Content-Type of each format, as prom-client names them. */
export const CONTENT_TYPES = {
  prometheus: prometheusContentType,
  openmetrics: openMetricsContentType,
} as const satisfies Record<ExpositionFormat, string>

/** The Content-Type header for an answer in `format`. */
export function contentTypeOf(format: ExpositionFormat): string {
  return CONTENT_TYPES[format]
}

const OPENMETRICS = 'application/openmetrics-text'

/**
 * OpenMetrics when the Accept header names `application/openmetrics-text` (any version) with a
 * q-value above 0 and at least as high as the text format's; the Prometheus text format
 * otherwise, including for an absent, wildcard-only or malformed header.
 *
 * The text format's q-value is that of the most specific range that matches it (`text/plain`,
 * then `text/*`, then `*\/*`), as RFC 9110 ranks them. Media-type parameters other than `q`
 * are ignored on purpose: Prometheus 3 adds `escaping=allow-utf-8`, and a negotiator that
 * requires parameters to match (as `negotiator` does) would then never pick OpenMetrics.
 */
export function negotiateFormat(accept: string | undefined): ExpositionFormat {
  if (accept === undefined) return 'prometheus'
  let openMetricsQ = -1
  // Index 0: `*/*`, 1: `text/*`, 2: `text/plain`; -1 where the header does not name it.
  const textQ = [-1, -1, -1]
  for (const element of splitOutside(accept, ',')) {
    const range = parseMediaRange(element)
    if (range === undefined) continue
    const { type, q } = range
    if (type === OPENMETRICS) openMetricsQ = Math.max(openMetricsQ, q)
    else if (type === 'text/plain') textQ[2] = Math.max(textQ[2], q)
    else if (type === 'text/*') textQ[1] = Math.max(textQ[1], q)
    else if (type === '*/*') textQ[0] = Math.max(textQ[0], q)
  }
  const textFormatQ = textQ[2] >= 0 ? textQ[2] : textQ[1] >= 0 ? textQ[1] : textQ[0]
  return openMetricsQ > 0 && openMetricsQ >= textFormatQ ? 'openmetrics' : 'prometheus'
}

const TOKEN = "[!#$%&'*+.^_`|~0-9a-z-]+"
const MEDIA_RANGE = new RegExp(`^${TOKEN}/${TOKEN}$`)
// RFC 9110 qvalue: 0 to 1 with at most three decimals.
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/

/** One element of an Accept header: its lower-cased `type/subtype` and q-value (1 if none). */
function parseMediaRange(element: string): { type: string; q: number } | undefined {
  const [range, ...parameters] = splitOutside(element, ';')
  const type = range.trim().toLowerCase()
  if (!MEDIA_RANGE.test(type)) return undefined
  let q = 1
  for (const parameter of parameters) {
    const eq = parameter.indexOf('=')
    if (eq === -1) return undefined
    if (parameter.slice(0, eq).trim().toLowerCase() !== 'q') continue
    const value = parameter.slice(eq + 1).trim()
    if (!QVALUE.test(value)) return undefined
    q = Number(value)
  }
  return { type, q }
}

/** Splits on `separator` except inside quoted strings (which may hold backslash escapes). */
function splitOutside(text: string, separator: string): string[] {
  const pieces: string[] = []
  let start = 0
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const char = text[i]
    if (quoted) {
      if (char === '\\') i++
      else if (char === '"') quoted = false
    } else if (char === '"') quoted = true
    else if (char === separator) {
      pieces.push(text.slice(start, i))
      start = i + 1
    }
  }
  pieces.push(text.slice(start))
  return pieces
}
