// Limits and junk handling for every listening server, so slow, idle, oversized or malformed
// requests cannot hold a worker and always get a JSON 4xx.
import type { IncomingMessage, Server } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyHttpOptions, FastifyInstance } from 'fastify'
import { type Config, requestTimeoutMs } from '../config'

/** Request line plus headers (Node's default, made explicit): beyond it, 431. */
const MAX_HEADER_BYTES = 16 * 1024
/** Longest URL answered normally: beyond it, 414 (well under MAX_HEADER_BYTES). */
const MAX_URL_LENGTH = 8 * 1024
/** Largest request body: the demo API takes small JSON documents. */
const BODY_LIMIT_BYTES = 64 * 1024

/** Limits every listening server gets, so slow, idle or oversized clients cannot hold a worker. */
export function hardenedServerOptions(config: Config): FastifyHttpOptions<Server> {
  return {
    // Whole request (headers and body), then 408; always longer than the slowest /slow.
    requestTimeout: requestTimeoutMs(config),
    // An idle keep-alive connection is closed after this (longer than common proxies' 60 s).
    keepAliveTimeout: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    // Request bodies: the API takes small JSON documents only; larger ones get 413.
    bodyLimit: BODY_LIMIT_BYTES,
    // During `pm2 reload` a closing worker still answers requests that arrive on its open
    // keep-alive connections (with `Connection: close`) instead of refusing them with 503.
    return503OnClosing: false,
    http: {
      // Request line and headers together; beyond it Node answers 431 (JSON, from Fastify).
      maxHeaderSize: MAX_HEADER_BYTES,
      // Slow-header clients (slowloris) get 408 after this ...
      headersTimeout: config.HTTP_HEADERS_TIMEOUT_MS,
      // ... checked this often (Node's default, 30 s, would let them linger far longer).
      connectionsCheckingInterval: 1000,
      // A request without Host is answered by rejectJunk, with a JSON body, not by Node.
      requireHostHeader: false,
    },
  }
}

/**
 * JSON 4xx answers for requests Fastify would otherwise pass on or Node would answer without
 * a body: overlong URLs (414), HTTP/1.1 without Host (400), and CONNECT (405).
 */
export function rejectJunk(app: FastifyInstance): void {
  // A callback hook, not an async one: it runs on every request and allocates nothing.
  app.addHook('onRequest', (request, reply, done) => {
    if (request.raw.url !== undefined && request.raw.url.length > MAX_URL_LENGTH) {
      reply.code(414).send({
        statusCode: 414,
        error: 'URI Too Long',
        message: `the URL is longer than ${MAX_URL_LENGTH} characters`,
      })
      return
    }
    if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) {
      reply
        .code(400)
        .send({ statusCode: 400, error: 'Bad Request', message: 'the Host header is required' })
      return
    }
    done()
  })
  // Node hands CONNECT to a 'connect' listener and, without one, drops the connection unanswered.
  app.server.on('connect', (_request: IncomingMessage, socket: Socket) => {
    const body = JSON.stringify({
      statusCode: 405,
      error: 'Method Not Allowed',
      message: 'CONNECT is not supported',
    })
    socket.on('error', () => socket.destroy())
    socket.end(
      `HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    )
  })
}
