// Counts across the processes of one worker id, with real processes (no PM2): a reload (the
// successor starts first), a restart (it starts after), a crash, and handovers that must be
// refused. Every check reads the worker's counter as a scrape would.
import assert from 'node:assert/strict'
import { type ChildProcess, fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { writeHandover } from '../../src/cluster/handover'
import type { WorkerCommand } from '../fixtures/cluster-worker'

const FIXTURE = join(__dirname, '..', 'fixtures', 'cluster-worker.ts')
const base = mkdtempSync(join(tmpdir(), 'succession-'))
after(() => rmSync(base, { recursive: true, force: true }))
let dirs = 0

interface Worker {
  child: ChildProcess
  send(command: WorkerCommand): Promise<{ text?: string; logs?: string[] }>
  /** The worker's http_requests_total and _count as this process' gather reads them. */
  counts(): Promise<{ requests: number; observed: number }>
}

async function startWorker(dir: string, workerId = '1', scope = 'app:1'): Promise<Worker> {
  const child = fork(FIXTURE, [dir, workerId, scope], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const next = () =>
    new Promise<{ text?: string; logs?: string[] }>((resolve, reject) => {
      child.once('message', resolve)
      child.once('exit', (code) => reject(new Error(`worker exited with ${code}`)))
    })
  await next()
  const worker: Worker = {
    child,
    send: (command) => {
      const answer = next()
      child.send(command)
      return answer
    },
    counts: async () => {
      const { text = '' } = await worker.send({ op: 'gather' })
      const value = (name: string) =>
        Number(
          new RegExp(`^${name}\\{[^}]*worker_id="${workerId}"[^}]*\\} (\\S+)$`, 'm').exec(
            text,
          )?.[1] ?? 0,
        )
      return {
        requests: value('http_requests_total'),
        observed: value('http_request_duration_seconds_count'),
      }
    },
  }
  return worker
}

async function stop(worker: Worker): Promise<string[]> {
  const exited = new Promise((resolve) => worker.child.once('exit', resolve))
  const { logs = [] } = await worker.send({ op: 'close' })
  await exited
  return logs
}

function newDir(): string {
  return join(base, String(dirs++))
}

test('reload: the successor starts first, waits, and continues the counts', async () => {
  const dir = newDir()
  const old = await startWorker(dir)
  await old.send({ op: 'count', n: 10 })
  const next = await startWorker(dir)
  // While the old process runs, the worker's series are still the old process' values.
  await next.send({ op: 'count', n: 3 })
  assert.deepEqual(await next.counts(), { requests: 10, observed: 10 })
  await old.send({ op: 'count', n: 2 })
  assert.deepEqual(await next.counts(), { requests: 12, observed: 12 })
  await stop(old)
  assert.deepEqual(await next.counts(), { requests: 15, observed: 15 })
  await stop(next)
})

test('restart: a successor that starts after the stop continues the counts', async () => {
  const dir = newDir()
  const old = await startWorker(dir)
  await old.send({ op: 'count', n: 5 })
  await stop(old)
  const next = await startWorker(dir)
  assert.deepEqual(await next.counts(), { requests: 5, observed: 5 })
  await next.send({ op: 'count', n: 1 })
  assert.deepEqual(await next.counts(), { requests: 6, observed: 6 })
  await stop(next)
})

test('four reloads in a row add up', async () => {
  const dir = newDir()
  let current = await startWorker(dir)
  for (let i = 1; i <= 4; i++) {
    await current.send({ op: 'count', n: i })
    const next = await startWorker(dir)
    await stop(current)
    current = next
  }
  assert.deepEqual(await current.counts(), { requests: 10, observed: 10 })
  await stop(current)
})

test('a crash hands nothing over: the successor starts from zero, a full reset', async () => {
  const dir = newDir()
  const old = await startWorker(dir)
  await old.send({ op: 'count', n: 5 })
  const exited = new Promise((resolve) => old.child.once('exit', resolve))
  old.child.kill('SIGKILL')
  await exited
  const next = await startWorker(dir)
  assert.deepEqual(await next.counts(), { requests: 0, observed: 0 })
  await stop(next)
})

test('a handover for another app or port, or from a stranger, is refused', async () => {
  const dir = newDir()
  const old = await startWorker(dir)
  await old.send({ op: 'count', n: 5 })
  await stop(old)
  // Replace the real handover by one for another scope: it must not be applied.
  const family = {
    name: 'http_requests_total',
    type: 'counter' as const,
    values: [
      { labels: { method: 'GET', route: '/', status_code: '200', worker_id: '1' }, value: 99 },
    ],
  }
  writeHandover(join(dir, '1.handover.json'), {
    scope: 'other:2',
    workerId: '1',
    pid: 1,
    families: [family],
  })
  const next = await startWorker(dir)
  assert.deepEqual(await next.counts(), { requests: 0, observed: 0 })
  const { logs = [] } = await next.send({ op: 'gather' })
  assert.ok(
    logs.some((line) => line.startsWith('refused a handover')),
    logs.join('; '),
  )

  // A successor waiting for a live predecessor takes a handover from that predecessor only.
  const successor = await startWorker(dir)
  writeHandover(join(dir, '1.handover.json'), {
    scope: 'app:1',
    workerId: '1',
    pid: process.pid,
    families: [family],
  })
  await stop(next)
  assert.deepEqual(await successor.counts(), { requests: 0, observed: 0 })
  await stop(successor)
})
