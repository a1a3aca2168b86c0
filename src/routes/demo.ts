// A small demo API worth graphing: a greeting, a parameterised route, a bounded slow route,
// a failing route and a JSON body route. Every response has a schema.
import type { FastifyInstance } from 'fastify'

export interface DemoRoutesOptions {
  workerId: string
  /** Upper bound of GET /slow?ms= (callers cannot hold a worker longer than this). */
  slowMaxMs: number
}

const errorSchema = {
  type: 'object',
  properties: {
    statusCode: { type: 'integer' },
    error: { type: 'string' },
    message: { type: 'string' },
  },
}

// A fixed catalogue so /items/:id has real 200s and 404s.
const ITEMS = new Map(
  ['apple', 'banana', 'cherry', 'damson', 'elderberry'].map((name, i) => [
    i + 1,
    { id: i + 1, name },
  ]),
)

export default async function demoRoutes(fastify: FastifyInstance, opts: DemoRoutesOptions) {
  const { workerId, slowMaxMs } = opts

  fastify.get(
    '/',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            properties: {
              message: { type: 'string' },
              worker_id: { type: 'string' },
              pid: { type: 'integer' },
            },
            required: ['message', 'worker_id', 'pid'],
          },
        },
      },
    },
    async () => ({
      message: `Hello from worker ${workerId}`,
      worker_id: workerId,
      pid: process.pid,
    }),
  )

  fastify.get<{ Params: { id: number } }>(
    '/items/:id',
    {
      schema: {
        params: {
          type: 'object',
          properties: { id: { type: 'integer', minimum: 1 } },
          required: ['id'],
        },
        response: {
          200: {
            type: 'object',
            properties: { id: { type: 'integer' }, name: { type: 'string' } },
            required: ['id', 'name'],
          },
          404: errorSchema,
        },
      },
    },
    async (request, reply) => {
      const item = ITEMS.get(request.params.id)
      if (item === undefined) {
        return reply
          .code(404)
          .send({ statusCode: 404, error: 'Not Found', message: `no item ${request.params.id}` })
      }
      return item
    },
  )

  fastify.post<{ Body: { name: string } }>(
    '/items',
    {
      schema: {
        body: {
          type: 'object',
          properties: { name: { type: 'string', minLength: 1, maxLength: 100 } },
          required: ['name'],
          additionalProperties: false,
        },
        response: {
          201: {
            type: 'object',
            properties: { id: { type: 'integer' }, name: { type: 'string' } },
            required: ['id', 'name'],
          },
        },
      },
    },
    // Echoes a would-be item; nothing is stored, so the demo stays stateless across workers.
    async (request, reply) => reply.code(201).send({ id: ITEMS.size + 1, name: request.body.name }),
  )

  fastify.get<{ Querystring: { ms: number } }>(
    '/slow',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: { ms: { type: 'integer', minimum: 0, maximum: slowMaxMs, default: 100 } },
        },
        response: {
          200: {
            type: 'object',
            properties: { waited_ms: { type: 'integer' } },
            required: ['waited_ms'],
          },
        },
      },
    },
    async (request) => {
      const { ms } = request.query
      await new Promise((resolve) => setTimeout(resolve, ms))
      return { waited_ms: ms }
    },
  )

  fastify.get('/error', { schema: { response: { 500: errorSchema } } }, async () => {
    throw new Error('deliberate failure, to show errors on the dashboard')
  })

  fastify.get(
    '/health',
    {
      logLevel: 'warn',
      schema: {
        response: {
          200: {
            type: 'object',
            properties: {
              status: { type: 'string' },
              worker_id: { type: 'string' },
              uptime_seconds: { type: 'number' },
            },
            required: ['status', 'worker_id', 'uptime_seconds'],
          },
        },
      },
    },
    async () => ({ status: 'ok', worker_id: workerId, uptime_seconds: process.uptime() }),
  )
}
