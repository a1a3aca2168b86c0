// The gather deadline follows Prometheus' own scrape timeout when that is the tighter one.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { gatherBudgetMs, SCRAPE_TIMEOUT_SHARE } from '../../src/cluster/cluster-view'

test('without the header the configured timeout applies', () => {
  assert.equal(gatherBudgetMs(1000), 1000)
  assert.equal(gatherBudgetMs(1000, 'garbage'), 1000)
  assert.equal(gatherBudgetMs(1000, '-3'), 1000)
})

test('a tight scrape timeout shortens the gather to a share of it', () => {
  assert.equal(gatherBudgetMs(1000, '0.9'), 900 * SCRAPE_TIMEOUT_SHARE)
  assert.equal(gatherBudgetMs(1000, '10'), 1000)
})
