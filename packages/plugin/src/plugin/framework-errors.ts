// Requests Fastify's router rejects before any route or hook runs: a path parameter longer
// than `maxParamLength` (414), a malformed percent-escape such as `/nope%` (400), a failing
// async constraint (500). No hook ever sees them, so the plugin cannot count them by itself;
// Fastify hands them to its `frameworkErrors` server option instead, and `countFrameworkErrors`
// is that option: it records them under the unmatched route, like a 404, and answers as
// Fastify's own default would (same status, JSON body with statusCode, code and message).
import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { RouteRecorder } from './route-recorder'

/** The unmatched-route recorder of each Fastify instance the metrics plugin is registered on. */
const unmatchedRecorders = new WeakMap<FastifyInstance, RouteRecorder>()

export function setUnmatchedRecorder(fastify: FastifyInstance, recorder: RouteRecorder): void {
  unmatchedRecorders.set(fastify, recorder)
}

/**
 * Fastify's `frameworkErrors` option: `Fastify({ frameworkErrors: countFrameworkErrors })`.
 * Without the metrics plugin on that instance it only answers.
 */
export function countFrameworkErrors(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  const recorder = unmatchedRecorders.get(request.server)
  if (recorder !== undefined) {
    // Fastify starts its own response clock right after routing; this is the same moment.
    const started = performance.now()
    const method = request.raw.method ?? ''
    const traceparent = request.raw.headers.traceparent
    let finished = false
    reply.raw.once('finish', () => {
      finished = true
      const seconds = (performance.now() - started) / 1000
      recorder.recordTraced(method, reply.statusCode, seconds, traceparent)
    })
    reply.raw.once('close', () => {
      if (!finished) recorder.recordAborted(method, traceparent)
    })
  }
  const statusCode = error.statusCode ?? 500
  reply.code(statusCode).send({
    statusCode,
    code: error.code,
    error: STATUS_CODES[statusCode],
    message: error.message,
  })
}
