// GET /metrics: the exposition in the format the scrape asks for (OpenMetrics 1.0 when its
// Accept header prefers it, as Prometheus' does; protobuf when it names it first, as
// Prometheus 3 does for native histograms; the Prometheus text format otherwise, under the
// version the scrape prefers), with a Content-Type naming what was sent,
// gzip-compressed when the client accepts it, optionally behind a bearer token. Scrapes that
// arrive while an answer in the same format and encoding is being made share it.
import { promisify } from 'node:util'
import { constants, gzip } from 'node:zlib'
import bearerAuth from '@fastify/bearer-auth'
import type { FastifyInstance } from 'fastify'
import Negotiator from 'negotiator'
import { type Exposition, type ExpositionFormat, negotiate } from '../exposition/exposition'
import { InFlight } from '../lib/in-flight'

const gzipAsync = promisify(gzip)

/** The answer to a scrape whose Accept header refuses every format: what it could ask for. */
const NOT_ACCEPTABLE =
  'Not Acceptable: /metrics answers in text/plain (version 0.0.4 or 1.0.0), application/openmetrics-text (version 1.0.0) or application/vnd.google.protobuf (proto=io.prometheus.client.MetricFamily; encoding=delimited)\n'

/** What a scrape asks for. */
export interface Scrape {
  format: ExpositionFormat
  /** Prometheus' `X-Prometheus-Scrape-Timeout-Seconds`, if sent. */
  scrapeTimeoutSeconds?: string
}

/** One scrape's exposition, text or protobuf's bytes: this registry's, or the cluster view's. */
export type MetricsCollector = (scrape: Scrape) => Promise<Exposition>

export interface MetricsRouteOptions {
  path: string
  collect: MetricsCollector
  /** If set, the route requires `Authorization: Bearer <token>` (scheme case-insensitive). */
  token?: string
  /** Measure the route in the HTTP metrics (default false). */
  measure?: boolean
}

export async function metricsRoute(
  fastify: FastifyInstance,
  options: MetricsRouteOptions,
): Promise<void> {
  if (options.token !== undefined) {
    await fastify.register(bearerAuth, {
      keys: [options.token],
      // RFC 7235: the scheme is case-insensitive ("bearer", "BEARER").
      specCompliance: 'rfc6749',
      verifyErrorLogLevel: 'warn',
      errorResponse: () => ({
        statusCode: 401,
        error: 'Unauthorized',
        message: 'a valid bearer token is required',
      }),
    })
    fastify.addHook('onSend', async (_request, reply) => {
      if (reply.statusCode === 401) reply.header('WWW-Authenticate', 'Bearer realm="metrics"')
    })
  }

  // Answers are bytes, made once and written to every scrape that shares them (a string would
  // be encoded again for each response); the same text collected again is not encoded again,
  // and scrapes that receive the same text meanwhile share its encoding. Collections are
  // shared only between scrapes with the same timeout header: the collector decides whether a
  // gather under one deadline may answer a scrape that gave another.
  const inFlight = new InFlight<string, Buffer>()
  const lastEncoded = new Map<string, { text: Exposition; body: Promise<Buffer> }>()
  const encode = (key: string, text: Exposition, compress: boolean): Promise<Buffer> => {
    const last = lastEncoded.get(key)
    if (last !== undefined && last.text === text) return last.body
    const body = compress
      ? gzipAsync(text, { level: constants.Z_BEST_SPEED })
      : Promise.resolve(
          typeof text === 'string'
            ? Buffer.from(text, 'utf8')
            : Buffer.from(text.buffer, text.byteOffset, text.byteLength),
        )
    const entry = { text, body }
    lastEncoded.set(key, entry)
    // A failed encoding is not kept for the next scrape.
    body.catch(() => {
      if (lastEncoded.get(key) === entry) lastEncoded.delete(key)
    })
    return body
  }
  const answer = (scrape: Scrape, compress: boolean): Promise<Buffer> => {
    const encoding = `${scrape.format}:${compress}`
    const key = `${encoding}:${scrape.scrapeTimeoutSeconds ?? ''}`
    return inFlight.share(
      key,
      () => options.collect(scrape).then((text) => encode(encoding, text, compress)),
      undefined,
    )
  }

  fastify.get(
    options.path,
    { config: { disableMetrics: options.measure !== true }, logLevel: 'warn' },
    async (request, reply) => {
      const negotiated = negotiate(request.headers.accept)
      reply.header('Vary', 'Accept, Accept-Encoding')
      // Every format refused with q=0: answering text anyway would ignore what the client said.
      if (negotiated === undefined) return reply.code(406).send(NOT_ACCEPTABLE)
      const { format, contentType } = negotiated
      const timeout = request.headers['x-prometheus-scrape-timeout-seconds']
      const compress = new Negotiator(request).encoding(['gzip', 'identity']) === 'gzip'
      const body = await answer(
        { format, scrapeTimeoutSeconds: Array.isArray(timeout) ? timeout[0] : timeout },
        compress,
      )
      reply.type(contentType)
      if (compress) reply.header('Content-Encoding', 'gzip')
      return reply.send(body)
    },
  )
}
