// Counts the scrapes whose timeout header asked for a gather shorter than the floor (see
// gatherBudget in cluster-view.ts). Each worker counts the scrapes it answered and renders its
// count with its own part, labelled with its worker id, so the series is the same whichever
// worker a scrape lands on and their sum is every clamped scrape.
import type { Counter, Registry } from 'prom-client'
import type { Exposition, ExpositionFormat } from '../exposition/exposition-format'
import { renderRegistry } from '../exposition/exposition-render'
import { clientFor } from '../lib/metrics-client'

export class ClampedScrapes {
  private readonly registry: Registry
  private readonly counter: Counter<'worker_id'>

  /** `client`: a registry of the client to count with, the worker's own. */
  constructor(
    private readonly workerId: string,
    client: Registry,
  ) {
    const { Counter, Registry } = clientFor(client)
    this.registry = new Registry()
    this.counter = new Counter({
      name: 'cluster_metrics_scrape_timeout_clamped_total',
      help: 'Scrapes whose X-Prometheus-Scrape-Timeout-Seconds asked for a shorter gather than the floor, answered under the floor instead.',
      labelNames: ['worker_id'],
      registers: [this.registry],
    })
    this.counter.inc({ worker_id: workerId }, 0)
  }

  inc(): void {
    this.counter.inc({ worker_id: this.workerId })
  }

  render(format: ExpositionFormat): Promise<Exposition> {
    return renderRegistry(this.registry, format)
  }
}
