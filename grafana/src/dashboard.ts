// The webapp dashboard, built with Grafana's foundation SDK (typed builders, current schema).
// `npm run dashboard` writes it to grafana/dashboards/; a test keeps the committed JSON in step.
// First screen: is every worker healthy and doing its share?
import * as bargauge from '@grafana/grafana-foundation-sdk/bargauge'
import * as common from '@grafana/grafana-foundation-sdk/common'
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard'
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus'
import * as stat from '@grafana/grafana-foundation-sdk/stat'
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries'

export const DASHBOARD_UID = 'webapp-workers'
/** Must match grafana/provisioning/datasources/prometheus.yaml. */
export const DATASOURCE: dashboard.DataSourceRef = { type: 'prometheus', uid: 'prometheus' }
/** The Prometheus job that scrapes the service (prometheus/prometheus.yml). */
export const JOB = 'webapp'

// Label matchers shared by every panel; the variables' "All" value is `.*`.
const target = `job="${JOB}", instance=~"$instance", worker_id=~"$worker"`
const requests = `http_requests_total{${target}, route=~"$route"}`
const buckets = `http_request_duration_seconds_bucket{${target}, route=~"$route"}`
const rate = (selector: string) => `rate(${selector}[$__rate_interval])`
const WORKER = '{{instance}} w{{worker_id}}'
/** 0 for every worker in the cluster view: a worker that serves nothing shows, not vanishes. */
const idleWorkers = `sum by (instance, worker_id) (cluster_metrics_worker_up{${target}}) * 0`

function query(expr: string, legendFormat: string, refId = 'A') {
  return new prometheus.DataqueryBuilder()
    .datasource(DATASOURCE)
    .expr(expr)
    .legendFormat(legendFormat)
    .refId(refId)
}

function instantQuery(expr: string, legendFormat: string, refId = 'A') {
  return query(expr, legendFormat, refId).instant()
}

function thresholds(...steps: Array<[number | null, string]>) {
  return new dashboard.ThresholdsConfigBuilder()
    .mode(dashboard.ThresholdsMode.Absolute)
    .steps(steps.map(([value, color]) => ({ value, color })))
}

function statPanel(title: string, description: string, unit: string) {
  return new stat.PanelBuilder()
    .title(title)
    .description(description)
    .datasource(DATASOURCE)
    .unit(unit)
    .height(4)
    .span(4)
    .graphMode(common.BigValueGraphMode.Area)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']))
}

function graph(title: string, description: string, unit: string, span = 12) {
  return new timeseries.PanelBuilder()
    .title(title)
    .description(description)
    .datasource(DATASOURCE)
    .unit(unit)
    .min(0)
    .height(8)
    .span(span)
    .fillOpacity(8)
    .legend(
      new common.VizLegendOptionsBuilder()
        .showLegend(true)
        .displayMode(common.LegendDisplayMode.Table)
        .placement(common.LegendPlacement.Right)
        .calcs(['lastNotNull', 'max']),
    )
    .tooltip(
      new common.VizTooltipOptionsBuilder()
        .mode(common.TooltipDisplayMode.Multi)
        .sort(common.SortOrder.Descending),
    )
}

function bars(title: string, description: string, unit: string, span = 12) {
  return new bargauge.PanelBuilder()
    .title(title)
    .description(description)
    .datasource(DATASOURCE)
    .unit(unit)
    .min(0)
    .height(8)
    .span(span)
    .orientation(common.VizOrientation.Horizontal)
    .displayMode(common.BarGaugeDisplayMode.Gradient)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']))
}

function variable(name: string, label: string, expr: string) {
  return new dashboard.QueryVariableBuilder(name)
    .label(label)
    .datasource(DATASOURCE)
    .query(expr)
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
    .sort(dashboard.VariableSort.NaturalAsc)
    .multi(true)
    .includeAll(true)
    .allValue('.*')
    .current({ selected: true, text: 'All', value: '$__all' })
}

export function buildDashboard(): dashboard.Dashboard {
  return (
    new dashboard.DashboardBuilder('Webapp: every worker')
      .uid(DASHBOARD_UID)
      .description(
        'A Fastify service under PM2 in cluster mode: every worker of every container, from ' +
          "each container's cluster view (one scrape shows all its workers).",
      )
      .tags(['webapp', 'pm2', 'fastify'])
      .editable()
      .tooltip(dashboard.DashboardCursorSync.Crosshair)
      .time({ from: 'now-30m', to: 'now' })
      .refresh('10s')
      .timezone('browser')
      .withVariable(variable('instance', 'Instance', `label_values(up{job="${JOB}"}, instance)`))
      .withVariable(
        variable(
          'worker',
          'Worker',
          `label_values(cluster_metrics_worker_up{job="${JOB}", instance=~"$instance"}, worker_id)`,
        ),
      )
      .withVariable(
        variable(
          'route',
          'Route',
          `label_values(http_requests_total{job="${JOB}", instance=~"$instance"}, route)`,
        ),
      )

      // Answers at a glance; the three request stats read the recording rules (all routes).
      .withRow(new dashboard.RowBuilder('Is every worker healthy and doing its share?'))
      .withPanel(
        statPanel(
          'Workers answering / expected',
          'Workers whose metrics made it into the last scrape of each selected container ' +
            '(cluster_metrics_workers_answered), against the workers PM2 runs.',
          'none',
        )
          .withTarget(
            instantQuery(
              `sum(cluster_metrics_workers_answered{job="${JOB}", instance=~"$instance"})`,
              'answering',
            ),
          )
          .withTarget(
            instantQuery(
              `sum(cluster_metrics_workers_expected{job="${JOB}", instance=~"$instance"})`,
              'expected',
              'B',
            ),
          ),
      )
      .withPanel(
        statPanel(
          'Containers up / discovered',
          'Scrape targets (one per container, found by DNS) that answered the last scrape.',
          'none',
        )
          .withTarget(instantQuery(`sum(up{job="${JOB}", instance=~"$instance"})`, 'up'))
          .withTarget(
            instantQuery(`count(up{job="${JOB}", instance=~"$instance"})`, 'discovered', 'B'),
          ),
      )
      .withPanel(
        statPanel(
          'Requests / s',
          'All routes, from instance_worker:http_requests:rate1m.',
          'reqps',
        ).withTarget(query(`sum(instance_worker:http_requests:rate1m{${target}})`, 'requests/s')),
      )
      .withPanel(
        statPanel(
          '5xx ratio',
          'Share of requests answered with a 5xx status over the last minute (all routes).',
          'percentunit',
        )
          .thresholds(thresholds([null, 'green'], [0.01, 'orange'], [0.05, 'red']))
          .withTarget(
            query(
              `sum(instance_worker:http_requests_errors:rate1m{${target}}) / sum(instance_worker:http_requests:rate1m{${target}})`,
              '5xx ratio',
            ),
          ),
      )
      .withPanel(
        statPanel(
          'p99 latency',
          '99th percentile response time over the last minute (all routes), from the ' +
            'per-worker histogram rates.',
          's',
        )
          .thresholds(thresholds([null, 'green'], [0.5, 'orange'], [1, 'red']))
          .withTarget(
            query(
              `histogram_quantile(0.99, sum by (le) (instance_worker:http_request_duration_seconds_bucket:rate1m{${target}}))`,
              'p99',
            ),
          ),
      )
      .withPanel(
        statPanel(
          'Worker restarts',
          'Worker process starts seen in the dashboard time range (changes of ' +
            'process_start_time_seconds, per worker, summed).',
          'none',
        )
          .thresholds(thresholds([null, 'green'], [1, 'orange'], [3, 'red']))
          .withTarget(
            instantQuery(
              `sum(changes(process_start_time_seconds{${target}}[$__range]))`,
              'restarts',
            ),
          ),
      )

      .withPanel(
        graph(
          'Request rate per worker and total',
          'Requests per second served by each worker, and their sum. Workers of one ' +
            'container should run close together: PM2 hands out connections round-robin.',
          'reqps',
        )
          .withTarget(
            query(`sum by (instance, worker_id) (${rate(requests)}) or ${idleWorkers}`, WORKER),
          )
          .withTarget(query(`sum(${rate(requests)})`, 'total', 'B')),
      )
      .withPanel(
        bars(
          'Share of requests per worker',
          "Each worker's share of the selected requests: with N workers, 1/N each is a fair " +
            'share. A worker that serves nothing (e.g. just restarted, while clients keep their ' +
            'connections to its siblings) shows 0.',
          'percentunit',
        ).withTarget(
          instantQuery(
            `(sum by (instance, worker_id) (${rate(requests)}) or ${idleWorkers}) / scalar(sum(${rate(requests)}))`,
            WORKER,
          ),
        ),
      )
      .withPanel(
        graph(
          'Latency p50 / p95 / p99 per worker',
          'Quantiles of http_request_duration_seconds per worker (answered requests only).',
          's',
        )
          .withTarget(
            query(
              `histogram_quantile(0.5, sum by (instance, worker_id, le) (${rate(buckets)}))`,
              `${WORKER} p50`,
            ),
          )
          .withTarget(
            query(
              `histogram_quantile(0.95, sum by (instance, worker_id, le) (${rate(buckets)}))`,
              `${WORKER} p95`,
              'B',
            ),
          )
          .withTarget(
            query(
              `histogram_quantile(0.99, sum by (instance, worker_id, le) (${rate(buckets)}))`,
              `${WORKER} p99`,
              'C',
            ),
          ),
      )
      .withPanel(
        graph(
          '5xx error ratio per worker',
          'Share of each worker’s requests answered with a 5xx status (0 when it served none).',
          'percentunit',
        ).withTarget(
          query(
            `(sum by (instance, worker_id) (rate(http_requests_total{${target}, route=~"$route", status_code=~"5.."}[$__rate_interval])) ` +
              `or sum by (instance, worker_id) (${rate(requests)}) * 0) ` +
              `/ sum by (instance, worker_id) (${rate(requests)})`,
            WORKER,
          ),
        ),
      )

      .withRow(new dashboard.RowBuilder('Worker health'))
      .withPanel(
        graph(
          'Workers answering the gather',
          '1 when the worker answered the cluster-view gather for that scrape, 0 when it was ' +
            'expected and missed the deadline.',
          'none',
          8,
        )
          .max(1)
          .withTarget(query(`cluster_metrics_worker_up{${target}}`, WORKER)),
      )
      .withPanel(
        graph(
          'Gather duration and deadline',
          'Time the answering worker took to gather every sibling, against its deadline.',
          's',
          8,
        )
          .withTarget(
            query(
              `cluster_metrics_gather_duration_seconds{job="${JOB}", instance=~"$instance"}`,
              '{{instance}} duration',
            ),
          )
          .withTarget(
            query(
              `cluster_metrics_gather_timeout_seconds{job="${JOB}", instance=~"$instance"}`,
              '{{instance}} deadline',
              'B',
            ),
          ),
      )
      .withPanel(
        bars(
          'Restarts per worker',
          'Times each worker process started again within the dashboard time range.',
          'none',
          8,
        ).withTarget(
          instantQuery(`changes(process_start_time_seconds{${target}}[$__range])`, WORKER),
        ),
      )
      .withPanel(
        graph(
          'Event-loop lag p99 per worker',
          "p99 delay of each worker's event loop: a blocked loop delays every request it holds.",
          's',
          8,
        ).withTarget(query(`nodejs_eventloop_lag_p99_seconds{${target}}`, WORKER)),
      )
      .withPanel(
        graph(
          'CPU per worker',
          'CPU time per second of each worker process (1 = one full core).',
          'percentunit',
          8,
        ).withTarget(query(`rate(process_cpu_seconds_total{${target}}[$__rate_interval])`, WORKER)),
      )
      .withPanel(
        graph(
          'Memory per worker',
          'Resident memory and V8 heap in use, per worker process.',
          'bytes',
          8,
        )
          .withTarget(query(`process_resident_memory_bytes{${target}}`, `${WORKER} rss`))
          .withTarget(query(`nodejs_heap_size_used_bytes{${target}}`, `${WORKER} heap`, 'B')),
      )

      .withRow(new dashboard.RowBuilder('Routes'))
      .withPanel(
        bars(
          'Top routes',
          'The 10 busiest route templates (unmatched requests are one route, __unmatched__).',
          'reqps',
          24,
        ).withTarget(instantQuery(`topk(10, sum by (route) (${rate(requests)}))`, '{{route}}')),
      )
      .build()
  )
}

/** The dashboard as committed: 2-space JSON with a trailing newline. */
export function dashboardJson(): string {
  return `${JSON.stringify(buildDashboard(), null, 2)}\n`
}
