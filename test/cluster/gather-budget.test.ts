// The gather deadline follows Prometheus' own scrape timeout when that is the tighter one.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { gatherBudgetMs } from '../../packages/plugin/src/cluster/cluster-view'

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
