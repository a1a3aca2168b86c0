// The last counts of a departed worker, rendered from its handover: only under the worker id
// the file is for, and judged by time at each scrape, so a refusal for a stepped clock does not
// last.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import {
  createHttpMetrics,
  createWorkerRegistry,
} from '../../packages/plugin/src/plugin/http-metrics'
import { createSocketPaths } from '../../packages/plugin/src/run-dir/socket-paths'
import { CarriedMetrics } from '../../packages/plugin/src/succession/carried-metrics'
import { DepartedWorkers } from '../../packages/plugin/src/succession/departed-workers'
import { type HandoverContent, writeHandover } from '../../packages/plugin/src/succession/handover'

const root = mkdtempSync(join(tmpdir(), 'departed-'))
after(() => rmSync(root, { recursive: true, force: true }))
let dirs = 0

const SCOPE = 'app:1'
const COUNTER = 'http_requests_total'

function setUp() {
  const paths = createSocketPaths(join(root, String(dirs++)))
  const registry = createWorkerRegistry('0', false)
  createHttpMetrics(registry, [0.1, 1])
  const carried = new CarriedMetrics(registry, [COUNTER])
  const warnings: string[] = []
  const departed = new DepartedWorkers({
    paths,
    scope: SCOPE,
    registry,
    carried,
    log: { info: () => {}, warn: (_obj, msg) => warnings.push(msg) },
  })
  /** The departed parts a scrape by worker 0 renders, by worker id. */
  const rendered = async () =>
    Object.fromEntries(
      (await departed.render(new Set(['0']), 'prometheus')).map((part) => [
        part.workerId,
        String(part.body),
      ]),
    )
  return { paths, rendered }
}

function handoverOf(workerId: string, value: number, workerIdLabel = workerId): HandoverContent {
  return {
    scope: SCOPE,
    workerId,
    pid: 4242,
    instance: '4242-0123abcd',
    families: [
      {
        name: COUNTER,
        type: 'counter',
        values: [
          {
            labels: { method: 'GET', route: '/', status_code: '200', worker_id: workerIdLabel },
            value,
          },
        ],
      },
    ],
  }
}

test('a departed worker’s handover whose series name another worker_id is not rendered', async () => {
  const { paths, rendered } = setUp()
  writeHandover(paths.handoverFor('evil1'), handoverOf('evil1', 999_119, '0'))
  writeHandover(paths.handoverFor('5'), handoverOf('5', 12))
  const parts = await rendered()
  assert.deepEqual(Object.keys(parts), ['5'])
  assert.match(parts['5'], /worker_id="5"\} 12\b/)
})

test('a departed worker’s handover dated in the future is served once the clock has caught up', async (t) => {
  const { paths, rendered } = setUp()
  const writtenAt = Date.now() + 120_000
  writeHandover(paths.handoverFor('5'), { ...handoverOf('5', 12), writtenAt })
  t.mock.timers.enable({ apis: ['Date'], now: writtenAt - 120_000 })
  assert.deepEqual(await rendered(), {}, 'two minutes ahead: refused for now')
  t.mock.timers.setTime(writtenAt)
  assert.deepEqual(Object.keys(await rendered()), ['5'])
})
