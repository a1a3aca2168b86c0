// The webapp dashboard, built with Grafana's foundation SDK (typed builders, current schema).
// `npm run dashboard` writes it to grafana/dashboards/ (provisioned) and grafana/import/ (for
// Grafana's "Import dashboard"); a test keeps the committed JSON in step.
// Portable: the Prometheus datasource and the scrape job are variables, every query reads raw
// series (no recording rules of ours), so it works on any Prometheus that scrapes the service.
// First screen: is every worker healthy and doing its share?
import * as bargauge from '@grafana/grafana-foundation-sdk/bargauge'
import type * as cog from '@grafana/grafana-foundation-sdk/cog'
import * as common from '@grafana/grafana-foundation-sdk/common'
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard'
import * as heatmap from '@grafana/grafana-foundation-sdk/heatmap'
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus'
import * as stat from '@grafana/grafana-foundation-sdk/stat'
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries'

export const DASHBOARD_UID = 'webapp-workers'
/** The provisioned datasource (grafana/provisioning/datasources/prometheus.yaml). */
export const PROVISIONED_DATASOURCE = { name: 'Prometheus', uid: 'prometheus' }
/** Every panel, query and variable reads the datasource the `datasource` variable holds. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a template
const DATASOURCE: dashboard.DataSourceRef = { type: 'prometheus', uid: '${datasource}' }
/**
 * Scraped by every target of the service in cluster mode and by nothing else, so the `job`
 * variable offers only the jobs that scrape this service.
 */
export const JOB_METRIC = 'cluster_metrics_workers_expected'
/** PM2's max_memory_restart (ecosystem.config.js): a worker above it is restarted. */
const MAX_MEMORY_RESTART_BYTES = 320 * 1024 * 1024

// Label matchers shared by every panel; the variables' "All" value is `.*`.
const job = 'job=~"$job"'
const instances = `${job}, instance=~"$instance"`
const target = `${instances}, worker_id=~"$worker"`
const requests = `http_requests_total{${target}, route=~"$route"}`
const errors = `http_requests_total{${target}, route=~"$route", status_code=~"5.."}`
const buckets = `http_request_duration_seconds_bucket{${target}, route=~"$route"}`
/** The same histogram as a native one: present where Prometheus ingests native histograms. */
const native = `http_request_duration_seconds{${target}, route=~"$route"}`
const rate = (selector: string) => `rate(${selector}[$__rate_interval])`
/**
 * A quantile from the native histogram where Prometheus has it, else from the classic buckets:
 * `or` keeps a classic result only for label sets the native one lacks.
 */
const quantile = (q: number, by: string[]) =>
  `histogram_quantile(${q}, sum by (${by.join(', ')}) (${rate(native)})) or ` +
  `histogram_quantile(${q}, sum by (${[...by, 'le'].join(', ')}) (${rate(buckets)}))`
/**
 * The latency distribution of the selected requests, for a heatmap: the native histogram where
 * Prometheus has it, else the classic buckets by `le`. `or on()` takes the classic buckets only
 * when no native histogram answers at all, so the two kinds never mix in one result.
 */
export const DISTRIBUTION_EXPR = `sum(${rate(native)}) or on() sum by (le) (${rate(buckets)})`
const WORKER = '{{instance}} w{{worker_id}}'
/** 0 for every worker in the cluster view: a worker that serves nothing shows, not vanishes. */
const idleWorkers = `sum by (instance, worker_id) (cluster_metrics_worker_up{${target}}) * 0`
/**
 * One value per worker whose process started within the last step: Prometheus keeps the
 * worker's series (same job, instance, worker_id) and its start time grows, so the current
 * start time exceeds every one seen up to a step earlier. The look-back of 5 minutes, not one
 * window, still holds the old start time when the worker missed scrapes while it restarted
 * (after a crash the series even goes stale for a scrape or two).
 */
export const RESTART_EXPR = `process_start_time_seconds{${target}} > max_over_time(process_start_time_seconds{${target}}[5m] offset $__interval)`

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

type Step = [number | null, string]
/** A quantity with no bad value (a rate, a share): one neutral colour. */
const NEUTRAL: Step[] = [[null, 'green']]
/** A count where 0 is the bad value (no worker, no target). */
const NONE_IS_BAD: Step[] = [
  [null, 'red'],
  [1, 'green'],
]
/** Restarts: one is a reload or a crash, three is a crash loop (the alert fires at 3 in 15m). */
const RESTARTS: Step[] = [
  [null, 'green'],
  [1, 'orange'],
  [3, 'red'],
]
/** 5xx share: 1% worth a look, 5% what the error-ratio alert fires on. */
const ERROR_RATIO: Step[] = [
  [null, 'green'],
  [0.01, 'orange'],
  [0.05, 'red'],
]
/** Response time: the latency alert fires on a p99 above 1 s. */
const LATENCY: Step[] = [
  [null, 'green'],
  [0.5, 'orange'],
  [1, 'red'],
]

function thresholds(steps: Step[]) {
  return new dashboard.ThresholdsConfigBuilder()
    .mode(dashboard.ThresholdsMode.Absolute)
    .steps(steps.map(([value, color]) => ({ value, color })))
}

function statPanel(title: string, description: string, unit: string, steps: Step[]) {
  return new stat.PanelBuilder()
    .title(title)
    .description(description)
    .datasource(DATASOURCE)
    .unit(unit)
    .thresholds(thresholds(steps))
    .height(4)
    .span(4)
    .graphMode(common.BigValueGraphMode.Area)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']))
}

function graph(title: string, description: string, unit: string, steps: Step[], span = 12) {
  return new timeseries.PanelBuilder()
    .title(title)
    .description(description)
    .datasource(DATASOURCE)
    .unit(unit)
    .thresholds(thresholds(steps))
    .thresholdsStyle(
      new common.GraphThresholdsStyleConfigBuilder().mode(
        steps.length > 1
          ? common.GraphThresholdsStyleMode.Dashed
          : common.GraphThresholdsStyleMode.Off,
      ),
    )
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

function bars(title: string, description: string, unit: string, steps: Step[], span = 12) {
  return new bargauge.PanelBuilder()
    .title(title)
    .description(description)
    .datasource(DATASOURCE)
    .unit(unit)
    .thresholds(thresholds(steps))
    .min(0)
    .height(8)
    .span(span)
    .orientation(common.VizOrientation.Horizontal)
    .displayMode(common.BarGaugeDisplayMode.Gradient)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']))
}

/** Grafana's data source picker, limited to Prometheus; `current` is the default choice. */
function datasourceVariable(current: dashboard.VariableOption) {
  return new dashboard.DatasourceVariableBuilder('datasource')
    .label('Data source')
    .type('prometheus')
    .current(current)
}

/** The scrape job: one at a time, as each job is one deployment of the service. */
function jobVariable() {
  return new dashboard.QueryVariableBuilder('job')
    .label('Job')
    .datasource(DATASOURCE)
    .query(`label_values(${JOB_METRIC}, job)`)
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
    .sort(dashboard.VariableSort.NaturalAsc)
    .multi(false)
    .includeAll(false)
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

/**
 * Grafana's Prometheus annotation fields beyond the SDK's AnnotationQuery type: each series the
 * query returns becomes an event titled and tagged from its labels.
 */
interface PrometheusAnnotation extends dashboard.AnnotationQuery {
  titleFormat: string
  textFormat: string
  tagKeys: string
  useValueForTime: boolean
}

const annotation = (value: dashboard.AnnotationQuery | PrometheusAnnotation) =>
  ({
    build: () => value,
  }) satisfies cog.Builder<dashboard.AnnotationQuery>

/** Grafana's own annotations and alerts, which Grafana adds to every dashboard it saves. */
const builtInAnnotation = annotation({
  name: 'Annotations & Alerts',
  datasource: { type: 'grafana', uid: '-- Grafana --' },
  enable: true,
  hide: true,
  iconColor: 'rgba(0, 211, 255, 1)',
  type: 'dashboard',
  builtIn: 1,
})

const restartAnnotation = annotation({
  name: 'Worker restarts',
  datasource: DATASOURCE,
  enable: true,
  hide: false,
  iconColor: 'orange',
  expr: RESTART_EXPR,
  titleFormat: 'Worker {{worker_id}} started',
  textFormat: '{{instance}}: a new process for worker {{worker_id}} (restart or reload)',
  tagKeys: 'instance,worker_id',
  useValueForTime: false,
})

export interface DashboardOptions {
  /** The data source the `datasource` variable starts on. */
  datasource: dashboard.VariableOption
}

/** The provisioned stack's choice: its own datasource, by uid. */
export const PROVISIONED: DashboardOptions = {
  datasource: {
    selected: true,
    text: PROVISIONED_DATASOURCE.name,
    value: PROVISIONED_DATASOURCE.uid,
  },
}

export function buildDashboard(options: DashboardOptions = PROVISIONED): dashboard.Dashboard {
  return new dashboard.DashboardBuilder('Webapp: every worker')
    .uid(DASHBOARD_UID)
    .description(
      'A Fastify service under PM2 in cluster mode: every worker of every container or pod, ' +
        "from each one's cluster view (one scrape shows all its workers).",
    )
    .tags(['webapp', 'pm2', 'fastify'])
    .editable()
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .time({ from: 'now-30m', to: 'now' })
    .refresh('10s')
    .timezone('browser')
    .annotation(builtInAnnotation)
    .annotation(restartAnnotation)
    .withVariable(datasourceVariable(options.datasource))
    .withVariable(jobVariable())
    .withVariable(variable('instance', 'Instance', `label_values(up{${job}}, instance)`))
    .withVariable(
      variable(
        'worker',
        'Worker',
        `label_values(cluster_metrics_worker_up{${instances}}, worker_id)`,
      ),
    )
    .withVariable(
      variable('route', 'Route', `label_values(http_requests_total{${instances}}, route)`),
    )

    .withRow(new dashboard.RowBuilder('Is every worker healthy and doing its share?'))
    .withPanel(
      statPanel(
        'Workers answering / expected',
        'Workers whose metrics made it into the last scrape of each selected target ' +
          '(cluster_metrics_workers_answered), against the workers PM2 runs.',
        'none',
        NONE_IS_BAD,
      )
        .withTarget(
          instantQuery(`sum(cluster_metrics_workers_answered{${instances}})`, 'answering'),
        )
        .withTarget(
          instantQuery(`sum(cluster_metrics_workers_expected{${instances}})`, 'expected', 'B'),
        ),
    )
    .withPanel(
      statPanel(
        'Targets up / discovered',
        'Scrape targets (one per container or pod) that answered the last scrape.',
        'none',
        NONE_IS_BAD,
      )
        .withTarget(instantQuery(`sum(up{${instances}})`, 'up'))
        .withTarget(instantQuery(`count(up{${instances}})`, 'discovered', 'B')),
    )
    .withPanel(
      statPanel(
        'Requests / s',
        'Selected routes, every selected worker.',
        'reqps',
        NEUTRAL,
      ).withTarget(query(`sum(${rate(requests)})`, 'requests/s')),
    )
    .withPanel(
      statPanel(
        '5xx ratio',
        'Share of the selected requests answered with a 5xx status.',
        'percentunit',
        ERROR_RATIO,
      ).withTarget(
        query(`(sum(${rate(errors)}) or vector(0)) / sum(${rate(requests)})`, '5xx ratio'),
      ),
    )
    .withPanel(
      statPanel(
        'p99 latency',
        '99th percentile response time of the selected requests, from the per-worker ' +
          'histograms summed: native histograms where Prometheus ingests them, else the classic buckets.',
        's',
        LATENCY,
      ).withTarget(query(quantile(0.99, []), 'p99')),
    )
    .withPanel(
      statPanel(
        'Worker restarts',
        'Worker process starts seen in the dashboard time range (changes of ' +
          'process_start_time_seconds, per worker, summed).',
        'none',
        RESTARTS,
      ).withTarget(
        instantQuery(`sum(changes(process_start_time_seconds{${target}}[$__range]))`, 'restarts'),
      ),
    )

    .withPanel(
      graph(
        'Request rate per worker and total',
        'Requests per second served by each worker, and their sum. Workers of one ' +
          'target should run close together: PM2 hands out connections round-robin.',
        'reqps',
        NEUTRAL,
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
        NEUTRAL,
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
        'Quantiles of http_request_duration_seconds per worker (answered requests only), from the native histogram where Prometheus ingests it, else from the classic buckets. Points are exemplars: the trace id of a request sent with a W3C traceparent header.',
        's',
        LATENCY,
      )
        .withTarget(query(quantile(0.5, ['instance', 'worker_id']), `${WORKER} p50`))
        .withTarget(query(quantile(0.95, ['instance', 'worker_id']), `${WORKER} p95`, 'B'))
        .withTarget(
          // Exemplars of the buckets behind the quantiles: a point links a spike to the trace id
          // of a request in it. Asked on one query only, so each exemplar is drawn once.
          query(quantile(0.99, ['instance', 'worker_id']), `${WORKER} p99`, 'C').exemplar(true),
        ),
    )
    .withPanel(
      new heatmap.PanelBuilder()
        .title('Latency distribution')
        .description(
          'Requests per second in each response-time bucket, every selected worker together: ' +
            'the native histogram’s fine buckets where Prometheus ingests it, else the classic buckets.',
        )
        .datasource(DATASOURCE)
        .unit('reqps')
        .thresholds(thresholds(NEUTRAL))
        .height(8)
        .span(12)
        .calculate(false)
        .yAxis(new heatmap.YAxisConfigBuilder().unit('s'))
        .rowsFrame(new heatmap.RowsHeatmapOptionsBuilder().layout(common.HeatmapCellLayout.Le))
        .color(
          new heatmap.HeatmapColorOptionsBuilder()
            .mode(heatmap.HeatmapColorMode.Scheme)
            .scheme('Oranges')
            .scale(heatmap.HeatmapColorScale.Exponential)
            .exponent(0.5),
        )
        .withTarget(query(DISTRIBUTION_EXPR, '{{le}}').format(prometheus.PromQueryFormat.Heatmap)),
    )
    .withPanel(
      graph(
        '5xx error ratio per worker',
        'Share of each worker’s requests answered with a 5xx status (0 when it served none).',
        'percentunit',
        ERROR_RATIO,
      ).withTarget(
        query(
          `(sum by (instance, worker_id) (${rate(errors)}) ` +
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
        NONE_IS_BAD,
        8,
      )
        .max(1)
        .withTarget(query(`cluster_metrics_worker_up{${target}}`, WORKER)),
    )
    .withPanel(
      graph(
        'Gather duration and deadline',
        'Time the answering worker took to gather every sibling, against its deadline ' +
          '(METRICS_GATHER_TIMEOUT_MS, 1 s by default).',
        's',
        [
          [null, 'green'],
          [0.5, 'orange'],
          [1, 'red'],
        ],
        8,
      )
        .withTarget(
          query(`cluster_metrics_gather_duration_seconds{${instances}}`, '{{instance}} duration'),
        )
        .withTarget(
          query(
            `cluster_metrics_gather_timeout_seconds{${instances}}`,
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
        RESTARTS,
        8,
      ).withTarget(
        instantQuery(`changes(process_start_time_seconds{${target}}[$__range])`, WORKER),
      ),
    )
    .withPanel(
      graph(
        'Event-loop lag p99 per worker',
        "p99 delay of each worker's event loop: a blocked loop delays every request it " +
          'holds (the lag alert fires above 0.2 s).',
        's',
        [
          [null, 'green'],
          [0.1, 'orange'],
          [0.2, 'red'],
        ],
        8,
      ).withTarget(query(`nodejs_eventloop_lag_p99_seconds{${target}}`, WORKER)),
    )
    .withPanel(
      graph(
        'CPU per worker',
        'CPU time per second of each worker process (1 = one full core, all a ' +
          'single-threaded worker can use).',
        'percentunit',
        [
          [null, 'green'],
          [0.8, 'orange'],
          [0.95, 'red'],
        ],
        8,
      ).withTarget(query(rate(`process_cpu_seconds_total{${target}}`), WORKER)),
    )
    .withPanel(
      graph(
        'Memory per worker',
        'Resident memory and V8 heap in use, per worker process. PM2 restarts a worker ' +
          'above 320 MiB (max_memory_restart).',
        'bytes',
        [
          [null, 'green'],
          [MAX_MEMORY_RESTART_BYTES * 0.75, 'orange'],
          [MAX_MEMORY_RESTART_BYTES, 'red'],
        ],
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
        NEUTRAL,
        24,
      ).withTarget(instantQuery(`topk(10, sum by (route) (${rate(requests)}))`, '{{route}}')),
    )
    .build()
}

/** The dashboard as committed: 2-space JSON with a trailing newline. */
export function dashboardJson(): string {
  return `${JSON.stringify(buildDashboard(), null, 2)}\n`
}
