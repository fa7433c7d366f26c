/** The test helper that reads GET /metrics' text: escaped labels, comments, timestamps. */
import { describe, expect, it } from 'vitest'
import { parsePrometheusText } from './prometheus-text.ts'

describe('reading the Prometheus text', () => {
  it('parses samples with escaped labels and skips comments', () => {
    const text = [
      '# HELP x y',
      '# TYPE x counter',
      'tally_ingest_batches_total{outcome="stored"} 3',
      'tally_http_requests_total{route="/v1/a\\"b\\\\c",status="200"} 2 1700000000000',
      'tally_ingest_duration_seconds_bucket{status="200",le="+Inf"} 7',
      'tally_ingest_samples_total 12',
      '',
    ].join('\n')
    expect(parsePrometheusText(text)).toEqual([
      { name: 'tally_ingest_batches_total', labels: { outcome: 'stored' }, value: 3 },
      {
        name: 'tally_http_requests_total',
        labels: { route: '/v1/a"b\\c', status: '200' },
        value: 2,
      },
      {
        name: 'tally_ingest_duration_seconds_bucket',
        labels: { status: '200', le: '+Inf' },
        value: 7,
      },
      { name: 'tally_ingest_samples_total', labels: {}, value: 12 },
    ])
  })
})
