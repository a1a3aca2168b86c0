// The gather deadline follows Prometheus' own scrape timeout when that is the tighter one.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  gatherBudget,
  gatherBudgetMs,
  MIN_GATHER_BUDGET_MS,
} from '../../packages/plugin/src/gather/cluster-view'

test('without the header the configured timeout applies', () => {
  assert.equal(gatherBudgetMs(1000), 1000)
  assert.equal(gatherBudgetMs(1000, 'garbage'), 1000)
  assert.equal(gatherBudgetMs(1000, '-3'), 1000)
})

test('a tight scrape timeout shortens the gather to half of it', () => {
  assert.equal(gatherBudgetMs(1000, '0.9'), 450)
  assert.equal(gatherBudgetMs(1000, '4'), 1000)
  assert.equal(gatherBudgetMs(5000, '4'), 2000)
  assert.equal(gatherBudgetMs(1000, '10'), 1000)
})

test('a scrape timeout too short for a healthy gather is raised to the floor, and said so', () => {
  assert.deepEqual(gatherBudget(1000, '0.001'), { ms: MIN_GATHER_BUDGET_MS, clamped: true })
  assert.deepEqual(gatherBudget(1000, '1e-9'), { ms: MIN_GATHER_BUDGET_MS, clamped: true })
  assert.deepEqual(gatherBudget(1000, '0.9'), { ms: 450, clamped: false })
  // A short timeout a Prometheus may really be given is not raised.
  assert.deepEqual(gatherBudget(1000, '0.4'), { ms: 200, clamped: false })
  // A configured timeout below the floor is the operator's choice: it still bounds the gather.
  assert.deepEqual(gatherBudget(100, '0.001'), { ms: 100, clamped: true })
  assert.deepEqual(gatherBudget(100, '10'), { ms: 100, clamped: false })
})
