/**
 * @module telemetry/local-histogram
 * A histogram aggregated here rather than by the OpenTelemetry SDK, for the per-request and
 * per-delivery paths: the SDK hashes the attribute set on every `record`, a measurable share of a
 * request's CPU; here a record is an array increment. `toMetricData` hands the SDK's exporter the
 * same histogram data point it would have built (cumulative, explicit buckets), at scrape time.
 */
import { type Attributes, type HrTime, ValueType } from '@opentelemetry/api';
import { AggregationTemporality, DataPointType, type HistogramMetricData } from '@opentelemetry/sdk-metrics';

export interface Series {
  attributes: Attributes;
  counts: number[];
  sum: number;
  count: number;
  min: number;
  max: number;
}

export class LocalHistogram {
  private readonly series = new Map<string, Series>();
  private readonly startTime = hrNow();

  /**
   * @param label - the one attribute this histogram is split by, if any
   * @param boundaries - inclusive upper bounds, ascending
   */
  constructor(
    private readonly name: string,
    private readonly description: string,
    private readonly boundaries: readonly number[],
    private readonly label?: string,
  ) {}

  /** Makes a series exist (at 0) before its first observation. */
  ensure(labelValue = ''): void {
    if (!this.series.has(labelValue)) this.series.set(labelValue, this.newSeries(labelValue));
  }

  record(value: number, labelValue = ''): void {
    let s = this.series.get(labelValue);
    if (!s) this.series.set(labelValue, (s = this.newSeries(labelValue)));
    this.recordIn(s, value);
  }

  /** The series of a label value, made if new: a caller on a hot path keeps it and records with `recordIn`. */
  seriesOf(labelValue = ''): Series {
    let s = this.series.get(labelValue);
    if (!s) this.series.set(labelValue, (s = this.newSeries(labelValue)));
    return s;
  }

  recordIn(s: Series, value: number): void {
    let i = 0;
    while (i < this.boundaries.length && value > this.boundaries[i]!) i++;
    s.counts[i]!++;
    s.sum += value;
    s.count++;
    if (value < s.min) s.min = value;
    if (value > s.max) s.max = value;
  }

  toMetricData(): HistogramMetricData {
    const endTime = hrNow();
    return {
      descriptor: { name: this.name, description: this.description, unit: 's', valueType: ValueType.DOUBLE },
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.HISTOGRAM,
      dataPoints: [...this.series.values()].map((s) => ({
        startTime: this.startTime,
        endTime,
        attributes: s.attributes,
        value: {
          buckets: { boundaries: [...this.boundaries], counts: [...s.counts] },
          sum: s.sum,
          count: s.count,
          ...(s.count > 0 ? { min: s.min, max: s.max } : {}),
        },
      })),
    };
  }

  private newSeries(labelValue: string): Series {
    return {
      attributes: this.label ? { [this.label]: labelValue } : {},
      counts: new Array<number>(this.boundaries.length + 1).fill(0),
      sum: 0,
      count: 0,
      min: Infinity,
      max: -Infinity,
    };
  }
}

function hrNow(): HrTime {
  const ms = Date.now();
  return [Math.floor(ms / 1000), (ms % 1000) * 1e6];
}
