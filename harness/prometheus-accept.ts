// The Accept headers real Prometheus servers send with each scrape, as Debian's 2.42.0 and
// 3.5.3 binaries sent them to a loopback server (test/app/prometheus-scrape-format.test.ts
// checks the 3.5 ones against the binary the tests run). Prometheus 3 weights its
// scrape_protocols in order (q=0.6 down) and adds escaping= to the 1.0.0 text formats from
// metric_name_escaping_scheme.
export const PROMETHEUS_ACCEPT = {
  /** 2.42, any scrape config: OpenMetrics first. */
  'prometheus-2.42':
    'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
  /** 3.5 defaults: OpenMetricsText1.0.0, OpenMetricsText0.0.1, PrometheusText1.0.0, PrometheusText0.0.4. */
  'prometheus-3.5':
    'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2',
  /** 3.5 with native histograms (PrometheusProto first), or scrape_protocols naming all five. */
  'prometheus-3.5 protobuf first':
    'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1',
  /** 3.5, scrape_protocols: [PrometheusProto, PrometheusText0.0.4]. */
  'prometheus-3.5 protobuf, text 0.0.4':
    'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,text/plain;version=0.0.4;q=0.5,*/*;q=0.4',
  /** 3.5, scrape_protocols: [PrometheusText1.0.0]. */
  'prometheus-3.5 text 1.0.0': 'text/plain;version=1.0.0;escaping=allow-utf-8;q=0.6,*/*;q=0.5',
  /** 3.5, scrape_protocols: [PrometheusText0.0.4]. */
  'prometheus-3.5 text 0.0.4': 'text/plain;version=0.0.4;q=0.6,*/*;q=0.5',
  /** 3.5, scrape_protocols: [OpenMetricsText0.0.1]. */
  'prometheus-3.5 OpenMetrics 0.0.1': 'application/openmetrics-text;version=0.0.1;q=0.6,*/*;q=0.5',
  /** 3.5, metric_name_escaping_scheme: underscores. */
  'prometheus-3.5 escaping underscores':
    'application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=underscores;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2',
} as const

export type PrometheusAcceptName = keyof typeof PROMETHEUS_ACCEPT
