// The cluster view's log lines as a service writes them: its logger binds the process' own
// worker_id to every line, so a line about another worker names that worker under its own key.
// Read as raw JSON text, since JSON.parse keeps only the last of two equal keys.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { waitFor } from '../../harness/net'
import metricsPlugin from '../../packages/plugin/src/plugin'

const base = mkdtempSync(join(tmpdir(), 'cluster-log-'))
after(() => rmSync(base, { recursive: true, force: true }))

/** The keys of a JSON object's top level that occur more than once in its text. */
function duplicateKeys(line: string): string[] {
  const seen = new Set<string>()
  const duplicates: string[] = []
  let depth = 0
  for (let i = 0; i < line.length; i++) {
    const char = line[i]
    if (char === '{' || char === '[') depth++
    else if (char === '}' || char === ']') depth--
    else if (char === '"') {
      let end = i + 1
      while (line[end] !== '"') end += line[end] === '\\' ? 2 : 1
      const key = line.slice(i + 1, end)
      i = end
      if (depth !== 1 || line[end + 1] !== ':') continue
      if (seen.has(key)) duplicates.push(key)
      seen.add(key)
    }
  }
  return duplicates
}

test('the duplicate finder sees a key given twice', () => {
  assert.deepEqual(duplicateKeys('{"worker_id":"3","a":{"worker_id":"x"},"worker_id":"5"}'), [
    'worker_id',
  ])
  assert.deepEqual(duplicateKeys('{"worker_id":"3","msg":"\\"worker_id\\":"}'), [])
})

/** A worker of the app, logging JSON lines with its own worker_id bound, as the service does. */
async function worker(workerId: string, dir: string, lines: string[]): Promise<FastifyInstance> {
  const app = Fastify({
    logger: {
      level: 'info',
      base: { pid: process.pid, worker_id: workerId },
      stream: { write: (line: string) => lines.push(line) },
    },
  })
  await app.register(metricsPlugin, {
    workerId,
    cluster: { key: 'logs', socketDir: dir },
    defaultMetrics: false,
  })
  app.get('/orders/:id', async () => ({ ok: true }))
  await app.ready()
  return app
}

function lineWith(lines: string[], msg: string): string | undefined {
  return lines.find((line) => (JSON.parse(line) as { msg: string }).msg === msg)
}

function assertNamesDeparted(line: string | undefined, departed: string): void {
  assert.ok(line !== undefined, 'the line was logged')
  assert.deepEqual(duplicateKeys(line), [], line)
  const fields = JSON.parse(line) as Record<string, unknown>
  assert.equal(fields.worker_id, '0', line)
  assert.equal(fields.departed_worker_id, departed, line)
}

test('a line about a worker that left names it as departed_worker_id, never a second worker_id', async (t) => {
  const dir = join(base, 'left')
  const lines: string[] = []
  const zero = await worker('0', dir, lines)
  t.after(() => zero.close())
  const one = await worker('1', dir, [])
  assert.equal((await one.inject('/orders/1')).statusCode, 200)
  await one.close() // leaves its handover, which worker 0 then serves

  const res = await zero.inject('/metrics')
  assert.match(
    res.body,
    /^http_requests_total\{method="GET",route="\/orders\/:id",status_code="200",worker_id="1"\} 1$/m,
  )
  assertNamesDeparted(
    lineWith(
      lines,
      'serving the last counts of a worker that left, until a process of it takes them',
    ),
    '1',
  )
})

test('a line about a removed link of a dead worker names it as departed_worker_id', async (t) => {
  const dir = join(base, 'swept')
  const lines: string[] = []
  const zero = await worker('0', dir, lines)
  t.after(() => zero.close())
  // Worker 2 began to stop and died with its link still there: a process that has exited.
  const deadPid = spawnSync(process.execPath, ['-e', '']).pid
  const socket = `2.${deadPid}-deadbeef.sock`
  symlinkSync(socket, join(dir, '2.sock'))
  writeFileSync(join(dir, `${socket}.stopping`), '')

  const line = await waitFor('the swept link logged', async () =>
    lineWith(lines, 'removed the link of a worker that stopped and died'),
  )
  assertNamesDeparted(line, '2')
})
