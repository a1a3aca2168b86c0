// The exposition formats /metrics can answer in, and the choice between them from a scrape's
// Accept header, as Prometheus 2 and 3 send it (docs/design.md, /metrics).
import { type MediaRange, parseAccept } from './accept-header'
import { PROTOBUF_CONTENT_TYPE } from './protobuf/metrics-schema'

/** The text formats: `prometheus`, the text format; `openmetrics`, OpenMetrics 1.0 text. */
export type TextFormat = 'prometheus' | 'openmetrics'

/**
 * The bytes of an answer: a text format, or `protobuf`, delimited
 * io.prometheus.client.MetricFamily messages.
 */
export type ExpositionFormat = TextFormat | 'protobuf'

/** A rendered exposition: text for the text formats, bytes for protobuf. */
export type Exposition = string | Uint8Array

/**
 * The Content-Type each text format is rendered under: the client's own names for them, the
 * same in prom-client and @prometheus-io/client (test/cluster/prom-client-internals.test.ts).
 */
export const CONTENT_TYPES = {
  prometheus: 'text/plain; version=0.0.4; charset=utf-8',
  openmetrics: 'application/openmetrics-text; version=1.0.0; charset=utf-8',
} as const satisfies Record<TextFormat, string>

/** What a scrape gets: the bytes to render, and the Content-Type that names them. */
export interface Negotiated {
  format: ExpositionFormat
  contentType: string
}

/**
 * What /metrics can send, most preferred first (that order breaks ties of q-value).
 *
 * - Protocol buffers, delimited MetricFamily messages (what Prometheus 3 puts first when it
 *   wants native histograms, and what client_golang writes): only when named with both
 *   parameters, `proto=io.prometheus.client.MetricFamily` and `encoding=delimited`, as
 *   client_golang negotiates; its other encodings (`text`, `compact-text`) are not written,
 *   and a wildcard never reaches it.
 * - OpenMetrics 1.0.0, also for a client that names version 0.0.1 (the pre-1.0 label of the
 *   same text format: Prometheus reads both with one parser and client_golang writes both with
 *   one encoder); the answer names 1.0.0, the version prom-client writes. Only when asked for by
 *   name: a wildcard gets the text format, which every Prometheus-compatible client reads.
 * - The text format 0.0.4.
 * - The text format 1.0.0: 0.0.4 plus quoted UTF-8 metric and label names. prom-client allows
 *   only legacy names (`[a-zA-Z_:][a-zA-Z0-9_:]*`, labels without `:`), which both versions
 *   write the same, so the bytes rendered for 0.0.4 are a valid 1.0.0 answer and are sent
 *   under 1.0.0 when the client prefers it.
 */
const TEXT_0_0_4: Offer = {
  format: 'prometheus',
  type: 'text',
  subtype: 'plain',
  version: '0.0.4',
  required: {},
  alsoVersions: [],
  byWildcard: true,
  escaping: false,
}

const OFFERS: readonly Offer[] = [
  {
    format: 'protobuf',
    type: 'application',
    subtype: 'vnd.google.protobuf',
    version: undefined,
    required: { proto: 'io.prometheus.client.MetricFamily', encoding: 'delimited' },
    alsoVersions: [],
    byWildcard: false,
    escaping: false,
  },
  {
    format: 'openmetrics',
    type: 'application',
    subtype: 'openmetrics-text',
    version: '1.0.0',
    required: {},
    alsoVersions: ['0.0.1'],
    byWildcard: false,
    escaping: true,
  },
  TEXT_0_0_4,
  {
    format: 'prometheus',
    type: 'text',
    subtype: 'plain',
    version: '1.0.0',
    required: {},
    alsoVersions: [],
    byWildcard: true,
    escaping: true,
  },
]

interface Offer {
  format: ExpositionFormat
  type: string
  subtype: string
  /** The version this offer writes; undefined for a type without versions (protobuf). */
  version: string | undefined
  /** Parameters a range must have, with these values, to name this offer. */
  required: Readonly<Record<string, string>>
  /** Other versions a client may name that this answer satisfies. */
  alsoVersions: readonly string[]
  /** Whether `type/*` and `*\/*` reach it. */
  byWildcard: boolean
  /** Whether the format has an `escaping` parameter (the 1.0.0 versions). */
  escaping: boolean
}

/**
 * Prometheus' metric name escaping schemes (`escaping=` of the 1.0.0 formats). Each leaves a
 * legacy name as it is, so with prom-client's names every scheme is honoured by the same
 * bytes; an unknown scheme is ignored, as client_golang ignores it, and not echoed.
 */
const ESCAPING_SCHEMES = new Set(['allow-utf-8', 'underscores', 'dots', 'values'])

const FALLBACK: Negotiated = { format: 'prometheus', contentType: contentTypeOf(TEXT_0_0_4) }

/**
 * The answer to a scrape whose Accept header is `accept`: of the offers, the one with the
 * highest q-value above 0 (ties go to the earlier offer), each offer's q-value being that of
 * the most specific media range naming it (RFC 9110): the type with its own version, then
 * without a version, then with another version it satisfies, then `type/*`, then `*\/*`. The text
 * format 0.0.4 when nothing is acceptable, or the header is absent or malformed (the header is
 * then disregarded, as RFC 9110 allows); `undefined` (406) when the header refuses that too with
 * q=0, such as `*\/*;q=0` or `text/*;q=0`, since then every offer is refused.
 */
export function negotiate(accept: string | undefined): Negotiated | undefined {
  if (accept === undefined) return FALLBACK
  const ranges = parseAccept(accept)
  let best: { offer: Offer; range: MediaRange } | undefined
  for (const offer of OFFERS) {
    const range = decidingRange(offer, ranges)
    if (range === undefined || range.q === 0) continue
    if (best === undefined || range.q > best.range.q) best = { offer, range }
  }
  if (best === undefined) return decidingRange(TEXT_0_0_4, ranges)?.q === 0 ? undefined : FALLBACK
  const escaping = best.range.params.escaping
  return {
    format: best.offer.format,
    contentType: contentTypeOf(
      best.offer,
      best.offer.escaping && escaping !== undefined && ESCAPING_SCHEMES.has(escaping)
        ? escaping
        : undefined,
    ),
  }
}

/** The most specific range that names `offer`, the highest q-value among equals. */
function decidingRange(offer: Offer, ranges: MediaRange[]): MediaRange | undefined {
  let best: { range: MediaRange; specificity: number } | undefined
  for (const range of ranges) {
    const specificity = specificityFor(offer, range)
    if (specificity === undefined) continue
    if (
      best === undefined ||
      specificity > best.specificity ||
      (specificity === best.specificity && range.q > best.range.q)
    ) {
      best = { range, specificity }
    }
  }
  return best?.range
}

/** How specifically `range` names `offer` (higher is more), undefined if it does not. */
function specificityFor(offer: Offer, range: MediaRange): number | undefined {
  if (range.type === '*') return offer.byWildcard ? 0 : undefined
  if (range.type !== offer.type) return undefined
  if (range.subtype === '*') return offer.byWildcard ? 1 : undefined
  if (range.subtype !== offer.subtype) return undefined
  for (const [name, value] of Object.entries(offer.required)) {
    if (range.params[name] !== value) return undefined
  }
  if (offer.version === undefined) return 4
  const version = range.params.version?.toLowerCase()
  if (version === offer.version) return 4
  if (version === undefined) return 3
  // Another version: not this offer by RFC 9110, so it counts after any range that is.
  return offer.alsoVersions.includes(version) ? 2 : undefined
}

function contentTypeOf(offer: Offer, escaping?: string): string {
  if (offer.format === 'protobuf') return PROTOBUF_CONTENT_TYPE
  const base = `${offer.type}/${offer.subtype}; version=${offer.version}; charset=utf-8`
  return escaping === undefined ? base : `${base}; escaping=${escaping}`
}
