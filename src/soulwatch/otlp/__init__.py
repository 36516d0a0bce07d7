"""OTLP/HTTP intake: OpenTelemetry traces become route metrics, OTLP metrics become series.

Next.js emits a server span per request (``instrumentation.ts`` with
``@vercel/otel``); :class:`SpanMetrics` turns those spans into
``http_server_request_duration_seconds`` by service, route, method and
status, as the OpenTelemetry Collector's span-metrics connector does.
:class:`OtlpMetrics` keeps the latest value of every OTLP metric point.
Both are collectors the monitor writes on its schedule (``job`` is the
resource's ``service.name``).
"""
