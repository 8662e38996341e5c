// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import Metrics
import Prometheus

/// The swift-metrics backend of `serve`: a ``PrometheusMetricsFactory``'s registry, buckets and
/// sanitizer, with each metric registered under its `# HELP` text.
///
/// swift-prometheus 2.4.1's own factory registers every swift-metrics handler with an empty help
/// text (so no `# HELP` line, which `promtool check metrics` rejects), and its registry stops the
/// process if one name is registered with two help texts, so a metric cannot be described
/// beforehand either. This factory makes the handlers through the registry's descriptor API
/// instead, with the text `help` gives for the name (empty, so no `# HELP` line, for a name it
/// lacks: the serve process test runs promtool over `/metrics` and fails on it).
struct HelpTextMetricsFactory: MetricsFactory {
    let base: PrometheusMetricsFactory
    let help: [String: String]

    init(_ base: PrometheusMetricsFactory, help: [String: String]) {
        self.base = base
        self.help = help
    }

    private func descriptor(_ label: String, _ dimensions: [(String, String)]) -> (MetricNameDescriptor, [(String, String)]) {
        let (name, labels) = base.nameAndLabelSanitizer(label, dimensions)
        return (MetricNameDescriptor(metricName: name, unitName: "", helpText: help[name] ?? ""), labels)
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        let (descriptor, labels) = descriptor(label, dimensions)
        return base.registry.makeCounter(descriptor: descriptor, labels: labels)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        let (descriptor, labels) = descriptor(label, dimensions)
        return base.registry.makeCounter(descriptor: descriptor, labels: labels)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        let (descriptor, labels) = descriptor(label, dimensions)
        guard aggregate else { return base.registry.makeGauge(descriptor: descriptor, labels: labels) }
        let buckets = base.valueHistogramBuckets[descriptor.name] ?? base.defaultValueHistogramBuckets
        return base.registry.makeValueHistogram(descriptor: descriptor, labels: labels, buckets: buckets)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        let (descriptor, labels) = descriptor(label, dimensions)
        return base.registry.makeGauge(descriptor: descriptor, labels: labels)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        let (descriptor, labels) = descriptor(label, dimensions)
        let buckets = base.durationHistogramBuckets[descriptor.name] ?? base.defaultDurationHistogramBuckets
        return base.registry.makeDurationHistogram(descriptor: descriptor, labels: labels, buckets: buckets)
    }

    func destroyCounter(_ handler: any CounterHandler) { base.destroyCounter(handler) }
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) { base.destroyFloatingPointCounter(handler) }
    func destroyRecorder(_ handler: any RecorderHandler) { base.destroyRecorder(handler) }
    func destroyMeter(_ handler: any MeterHandler) { base.destroyMeter(handler) }
    func destroyTimer(_ handler: any TimerHandler) { base.destroyTimer(handler) }
}
