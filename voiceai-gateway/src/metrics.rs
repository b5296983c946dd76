//! The gateway's Prometheus metrics (`GET /metrics`): one [`Metrics`] registry per
//! gateway, reached through the call registry ([`crate::calls::Calls::metrics`]) by
//! everything that counts.
//!
//! No label names a call (its id, number or channel): a label value is one of a fixed set
//! ([`END_REASONS`], [`DIRECTIONS`], ...) or a configured Asterisk server, so the number
//! of series stays bounded whatever the traffic. Series with known labels exist from the
//! start at 0, so `rate()` and `increase()` see their first increment.
//!
//! The text is OpenMetrics (`application/openmetrics-text`), which Prometheus scrapes
//! natively; counters are named `<family>_total` there.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric name's prefix.
pub const PREFIX: &str = "voiceai";

/// The values of `voiceai_calls_ended_total`'s `reason` label: the end reasons calls
/// record (`endReason` in the API); a reason not listed counts as `other`.
pub const END_REASONS: &[&str] = &[
    "caller_hangup",
    "caller_left",
    "channel_gone",
    "hangup_requested",
    "backend_hangup",
    "backend_closed",
    "backend_unavailable",
    "media_ended",
    "transferred",
    "transfer_failed",
    "failed_over",
    "shutdown",
    "answer_failed",
    "setup_failed",
    "not_answered",
    "cancelled",
    "gateway_error",
    "other",
];

/// The values of the media metrics' `direction` label: `in` is the caller's audio
/// (Asterisk to the backend), `out` the backend's (to Asterisk), as in the API's
/// `framesIn`/`framesOut`.
pub const DIRECTIONS: &[&str] = &["in", "out"];

/// The values of `voiceai_calls_started_total`'s `direction` label.
pub const CALL_DIRECTIONS: &[&str] = &["inbound", "outbound"];

/// The values of `voiceai_calls_refused_total`'s `reason` label.
pub const REFUSAL_REASONS: &[&str] = &["max_calls", "draining"];

/// The values of `voiceai_ws_clients`'s `endpoint` label.
pub const WS_ENDPOINTS: &[&str] = &["frontend", "monitor"];

/// The `result` of a call's recording (`--record`): saved in `--recordings-dir`, or not
/// (not started, or not downloaded: then it is kept on Asterisk).
pub const RECORDING_RESULTS: &[&str] = &["saved", "failed"];

/// The `result` of a call log line (`--call-log`): written, failed (disk full, I/O error)
/// or dropped (the writer was too far behind).
pub const CALL_LOG_RESULTS: &[&str] = &["written", "failed", "dropped"];

/// A label set of one fixed label.
type Fixed = [(&'static str, &'static str); 1];
/// A label set naming an Asterisk server.
type Server = [(&'static str, String); 1];

fn fixed(name: &'static str, value: &'static str) -> Fixed {
    [(name, value)]
}

/// The end reason `reason` is counted under: itself when listed in [`END_REASONS`],
/// `not_answered` for `not_answered (cause N)`, else `other`.
pub fn end_reason_label(reason: &str) -> &'static str {
    let base = reason.split_once(' ').map_or(reason, |(base, _)| base);
    END_REASONS
        .iter()
        .copied()
        .find(|known| *known == base)
        .unwrap_or("other")
}

/// Call durations, in seconds: from a few seconds to an hour.
const DURATION_BUCKETS: [f64; 11] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

/// Added latency, in seconds: what the gateway adds is normally well under a
/// millisecond; the upper buckets show a saturated machine.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS.iter().copied())
}

/// One direction's media series, taken out of their families once so that counting a
/// frame is one atomic add (no label lookup per frame).
#[derive(Debug, Clone)]
struct MediaSeries {
    frames: Counter,
    dropped: Counter,
    latency: Histogram,
}

/// The gateway's metrics; every method is a cheap update, callable from any task.
pub struct Metrics {
    registry: Registry,
    calls_started: Family<Fixed, Counter>,
    calls_answered: Counter,
    calls_ended: Family<Fixed, Counter>,
    calls_refused: Family<Fixed, Counter>,
    active_calls: Gauge,
    call_duration: Histogram,
    backend_connect_failures: Counter,
    backend_disconnects: Counter,
    backend_reconnects: Counter,
    backend_failovers: Counter,
    media_in: MediaSeries,
    media_out: MediaSeries,
    ari_connected: Family<Server, Gauge>,
    ari_reconnects: Family<Server, Counter>,
    ws_clients: Family<Fixed, Gauge>,
    recordings: Family<Fixed, Counter>,
    call_log_lines: Family<Fixed, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric at 0.
    pub fn new() -> Self {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix(PREFIX);
        let build_info = Family::<Fixed, Gauge>::default();
        build_info
            .get_or_create(&fixed("version", env!("CARGO_PKG_VERSION")))
            .set(1);
        registry.register(
            "build_info",
            "Always 1; its version label is the gateway's version",
            build_info,
        );
        let calls_started = Family::<Fixed, Counter>::default();
        for direction in CALL_DIRECTIONS {
            calls_started.get_or_create_owned(&fixed("direction", direction));
        }
        registry.register(
            "calls_started",
            "Calls registered (inbound calls taken, outbound calls placed)",
            calls_started.clone(),
        );
        let calls_answered = Counter::default();
        registry.register(
            "calls_answered",
            "Calls answered (inbound by the gateway, outbound by the callee)",
            calls_answered.clone(),
        );
        let calls_ended = Family::<Fixed, Counter>::default();
        for reason in END_REASONS {
            calls_ended.get_or_create_owned(&fixed("reason", reason));
        }
        registry.register(
            "calls_ended",
            "Calls ended, by end reason",
            calls_ended.clone(),
        );
        let calls_refused = Family::<Fixed, Counter>::default();
        for reason in REFUSAL_REASONS {
            calls_refused.get_or_create_owned(&fixed("reason", reason));
        }
        registry.register(
            "calls_refused",
            "Inbound calls sent back to the dialplan unanswered (full or draining)",
            calls_refused.clone(),
        );
        let active_calls = Gauge::default();
        registry.register("active_calls", "Calls up now", active_calls.clone());
        let call_duration = Histogram::new(DURATION_BUCKETS.iter().copied());
        registry.register(
            "call_duration_seconds",
            "How long ended calls lasted, from registration to end",
            call_duration.clone(),
        );
        let backend_connect_failures = Counter::default();
        registry.register(
            "backend_connect_failures",
            "Backend connection attempts that failed (at call start or while reconnecting)",
            backend_connect_failures.clone(),
        );
        let backend_disconnects = Counter::default();
        registry.register(
            "backend_disconnects",
            "Backend connections lost during a call",
            backend_disconnects.clone(),
        );
        let backend_reconnects = Counter::default();
        registry.register(
            "backend_reconnects",
            "Backend connections made again during a call after a loss or a failed attempt",
            backend_reconnects.clone(),
        );
        let backend_failovers = Counter::default();
        registry.register(
            "backend_failovers",
            "Calls sent to the fallback endpoint because the backend stayed away",
            backend_failovers.clone(),
        );
        let frames = Family::<Fixed, Counter>::default();
        let dropped = Family::<Fixed, Counter>::default();
        let latency =
            Family::<Fixed, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let series = |direction: &'static str| MediaSeries {
            frames: frames.get_or_create_owned(&fixed("direction", direction)),
            dropped: dropped.get_or_create_owned(&fixed("direction", direction)),
            latency: latency.get_or_create_owned(&fixed("direction", direction)),
        };
        let media_in = series("in");
        let media_out = series("out");
        registry.register(
            "media_frames",
            "20 ms media frames relayed: in = from Asterisk (the caller), out = to Asterisk (the backend's audio)",
            frames,
        );
        registry.register(
            "media_frames_dropped",
            "Frames not relayed: in = caller audio while no backend was connected, out = backend audio beyond the playout queue",
            dropped,
        );
        registry.register(
            "media_added_latency_seconds",
            "Delay the gateway added to a frame: in = arrival from Asterisk to hand-over to the backend socket, out = sent to Asterisk minus its due time",
            latency,
        );
        let ari_connected = Family::<Server, Gauge>::default();
        registry.register(
            "ari_connected",
            "Whether the ARI events WebSocket is up (1) or not (0), per Asterisk server",
            ari_connected.clone(),
        );
        let ari_reconnects = Family::<Server, Counter>::default();
        registry.register(
            "ari_reconnects",
            "ARI connections made again after a loss, per Asterisk server",
            ari_reconnects.clone(),
        );
        let ws_clients = Family::<Fixed, Gauge>::default();
        for endpoint in WS_ENDPOINTS {
            ws_clients.get_or_create_owned(&fixed("endpoint", endpoint));
        }
        registry.register(
            "ws_clients",
            "Clients connected to the event WebSockets (/ws/frontend, /ws/monitor)",
            ws_clients.clone(),
        );
        let recordings = Family::<Fixed, Counter>::default();
        for result in RECORDING_RESULTS {
            recordings.get_or_create_owned(&fixed("result", result));
        }
        registry.register(
            "recordings",
            "Call recordings (--record): saved in --recordings-dir, or failed",
            recordings.clone(),
        );
        let call_log_lines = Family::<Fixed, Counter>::default();
        for result in CALL_LOG_RESULTS {
            call_log_lines.get_or_create_owned(&fixed("result", result));
        }
        registry.register(
            "call_log_lines",
            "Call log lines (--call-log): written, failed (disk full, I/O error) or dropped",
            call_log_lines.clone(),
        );
        // The standard process metrics, unprefixed as Prometheus' own clients name them.
        root.register_collector(Box::new(ProcessCollector));
        Self {
            registry: root,
            calls_started,
            calls_answered,
            calls_ended,
            calls_refused,
            active_calls,
            call_duration,
            backend_connect_failures,
            backend_disconnects,
            backend_reconnects,
            backend_failovers,
            media_in,
            media_out,
            ari_connected,
            ari_reconnects,
            ws_clients,
            recordings,
            call_log_lines,
        }
    }

    /// The metrics in OpenMetrics text ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }

    /// A call was registered (`outbound`: placed by the gateway); it is active until
    /// [`Metrics::call_ended`].
    pub fn call_started(&self, outbound: bool) {
        let direction = if outbound { "outbound" } else { "inbound" };
        self.calls_started
            .get_or_create(&fixed("direction", direction))
            .inc();
        self.active_calls.inc();
    }

    /// A call was answered.
    pub fn call_answered(&self) {
        self.calls_answered.inc();
    }

    /// A call ended with `reason` after `duration`.
    pub fn call_ended(&self, reason: &str, duration: Duration) {
        self.calls_ended
            .get_or_create(&fixed("reason", end_reason_label(reason)))
            .inc();
        self.active_calls.dec();
        self.call_duration.observe(duration.as_secs_f64());
    }

    /// An inbound call was sent back to the dialplan (`reason`: one of
    /// [`REFUSAL_REASONS`]; any other counts as `max_calls`).
    pub fn call_refused(&self, reason: &str) {
        let label = REFUSAL_REASONS
            .iter()
            .copied()
            .find(|known| *known == reason)
            .unwrap_or("max_calls");
        self.calls_refused
            .get_or_create(&fixed("reason", label))
            .inc();
    }

    /// A backend connection attempt failed.
    pub fn backend_connect_failed(&self) {
        self.backend_connect_failures.inc();
    }

    /// A call's backend connection was lost.
    pub fn backend_lost(&self) {
        self.backend_disconnects.inc();
    }

    /// A call's backend connected again after being away.
    pub fn backend_reconnected(&self) {
        self.backend_reconnects.inc();
    }

    /// A call goes to the fallback endpoint.
    pub fn backend_failover(&self) {
        self.backend_failovers.inc();
    }

    /// A frame came from Asterisk; `forwarded_after`: how long it took to hand it to the
    /// backend, `None` when it was dropped (no backend connected).
    pub fn frame_in(&self, forwarded_after: Option<Duration>) {
        self.media_in.frames.inc();
        match forwarded_after {
            Some(latency) => self.media_in.latency.observe(latency.as_secs_f64()),
            None => {
                self.media_in.dropped.inc();
            }
        }
    }

    /// A frame was sent to Asterisk `late` after its due time.
    pub fn frame_out(&self, late: Duration) {
        self.media_out.frames.inc();
        self.media_out.latency.observe(late.as_secs_f64());
    }

    /// `frames` of backend audio were dropped (the playout queue was full).
    pub fn frames_out_dropped(&self, frames: u64) {
        self.media_out.dropped.inc_by(frames);
    }

    /// The ARI connection to `server` is up or down (`reconnected`: up again after a
    /// loss).
    pub fn ari_state(&self, server: &str, connected: bool, reconnected: bool) {
        let labels = [("server", server.to_owned())];
        self.ari_connected
            .get_or_create(&labels)
            .set(i64::from(connected));
        let reconnects = self.ari_reconnects.get_or_create(&labels);
        if reconnected {
            reconnects.inc();
        }
    }

    /// A call's recording was saved (`true`) or not.
    pub fn recording(&self, saved: bool) {
        let result = if saved { "saved" } else { "failed" };
        self.recordings
            .get_or_create(&fixed("result", result))
            .inc();
    }

    /// A call log line ended as `result` (one of [`CALL_LOG_RESULTS`]).
    pub fn call_log_line(&self, result: &'static str) {
        self.call_log_lines
            .get_or_create(&fixed("result", result))
            .inc();
    }

    /// A client connected to the event WebSocket `endpoint` (one of [`WS_ENDPOINTS`]);
    /// it counts until the guard is dropped.
    pub fn ws_client(self: &Arc<Self>, endpoint: &'static str) -> WsClientGuard {
        let gauge = self
            .ws_clients
            .get_or_create_owned(&fixed("endpoint", endpoint));
        gauge.inc();
        WsClientGuard(gauge)
    }
}

/// `process_*`: the gateway's CPU time, memory, open files and start time, read from
/// `/proc/self` at each scrape (nothing where there is no `/proc`).
#[derive(Debug)]
struct ProcessCollector;

/// Clock ticks per second of `/proc/<pid>/stat`'s times: `USER_HZ`, 100 on every Linux
/// architecture the gateway runs on.
const USER_HZ: f64 = 100.0;

/// What `/proc/self` says, as far as it could be read.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct ProcessStats {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<i64>,
    virtual_bytes: Option<i64>,
    open_fds: Option<i64>,
    start_time_seconds: Option<i64>,
}

impl ProcessStats {
    /// Reads `/proc/self/stat`, `/proc/self/status`, `/proc/self/fd` and `/proc/stat`
    /// (boot time).
    fn read() -> Self {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let status = std::fs::read_to_string("/proc/self/status").ok();
        let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("btime "))
                .and_then(|value| value.trim().parse::<i64>().ok())
        });
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|entries| i64::try_from(entries.count()).unwrap_or(i64::MAX));
        Self::parse(stat.as_deref(), status.as_deref(), boot_time, open_fds)
    }

    /// From the texts of `/proc/self/stat` and `/proc/self/status`, the boot time and
    /// the open files counted.
    fn parse(
        stat: Option<&str>,
        status: Option<&str>,
        boot_time: Option<i64>,
        open_fds: Option<i64>,
    ) -> Self {
        // The command name (field 2) is in parentheses and may hold spaces: the fields
        // that follow start after the last ')'. Field 3 (state) is then index 0.
        let fields: Vec<&str> = stat
            .and_then(|text| text.rsplit_once(')'))
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |number: usize| fields.get(number - 3).and_then(|v| v.parse::<i64>().ok());
        let ticks = |number: usize| field(number).map(|v| v as f64 / USER_HZ);
        Self {
            cpu_seconds: ticks(14).zip(ticks(15)).map(|(user, system)| user + system),
            virtual_bytes: field(23),
            // In kB in `status`, so that the page size does not matter.
            resident_bytes: status
                .and_then(|text| text.lines().find_map(|line| line.strip_prefix("VmRSS:")))
                .and_then(|value| {
                    value
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<i64>()
                        .ok()
                })
                .map(|kib| kib.saturating_mul(1024)),
            open_fds,
            start_time_seconds: boot_time
                .zip(field(22))
                .map(|(boot, started)| boot + (started as f64 / USER_HZ) as i64),
        }
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stats = ProcessStats::read();
        if let Some(seconds) = stats.cpu_seconds {
            let counter = ConstCounter::new(seconds);
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds",
                None,
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                stats.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                stats.virtual_bytes,
            ),
            ("process_open_fds", "Open file descriptors", stats.open_fds),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds",
                stats.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                let gauge = ConstGauge::new(value);
                let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
                gauge.encode(metric)?;
            }
        }
        Ok(())
    }
}

/// Counts one event WebSocket client while it lives.
#[derive(Debug)]
pub struct WsClientGuard(Gauge);

impl Drop for WsClientGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_stats_are_read_from_proc() {
        // A command name with a space and a parenthesis, as /proc shows it.
        let stat = "1234 (voice (ai) gw) S 1 1234 1234 0 -1 4194560 500 0 0 0 \
                    250 50 0 0 20 0 8 0 1000 104857600 2560 18446744073709551615";
        let status = "Name:\tvoiceai-gateway\nVmRSS:\t   10240 kB\nThreads:\t8\n";
        let stats = ProcessStats::parse(Some(stat), Some(status), Some(1_700_000_000), Some(12));
        assert_eq!(stats.cpu_seconds, Some(3.0));
        assert_eq!(stats.virtual_bytes, Some(104_857_600));
        assert_eq!(stats.resident_bytes, Some(10240 * 1024));
        assert_eq!(stats.start_time_seconds, Some(1_700_000_010));
        assert_eq!(stats.open_fds, Some(12));
        assert_eq!(
            ProcessStats::parse(None, None, None, None),
            ProcessStats::default()
        );
        if cfg!(target_os = "linux") {
            let ours = ProcessStats::read();
            assert!(
                ours.resident_bytes.is_some_and(|bytes| bytes > 0),
                "{ours:?}"
            );
            assert!(ours.open_fds.is_some_and(|fds| fds > 0), "{ours:?}");
        }
    }

    #[test]
    fn end_reasons_map_to_a_fixed_set() {
        assert_eq!(end_reason_label("caller_hangup"), "caller_hangup");
        assert_eq!(end_reason_label("not_answered (cause 17)"), "not_answered");
        assert_eq!(end_reason_label("something new"), "other");
        assert_eq!(end_reason_label(""), "other");
    }

    #[test]
    fn every_series_is_there_from_the_start_and_counts() {
        let metrics = Arc::new(Metrics::new());
        let text = metrics.render();
        for reason in END_REASONS {
            assert!(
                text.contains(&format!(
                    "voiceai_calls_ended_total{{reason=\"{reason}\"}} 0"
                )),
                "{reason}: {text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        metrics.call_started(false);
        metrics.call_answered();
        metrics.frame_in(Some(Duration::from_micros(300)));
        metrics.frame_in(None);
        metrics.frame_out(Duration::ZERO);
        metrics.ari_state("127.0.0.1:8088", true, false);
        let client = metrics.ws_client("monitor");
        let text = metrics.render();
        for line in [
            "voiceai_calls_started_total{direction=\"inbound\"} 1",
            "voiceai_active_calls 1",
            "voiceai_media_frames_total{direction=\"in\"} 2",
            "voiceai_media_frames_dropped_total{direction=\"in\"} 1",
            "voiceai_media_added_latency_seconds_count{direction=\"in\"} 1",
            "voiceai_media_added_latency_seconds_bucket{le=\"0.0005\",direction=\"in\"} 1",
            "voiceai_ari_connected{server=\"127.0.0.1:8088\"} 1",
            "voiceai_ari_reconnects_total{server=\"127.0.0.1:8088\"} 0",
            "voiceai_ws_clients{endpoint=\"monitor\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
        drop(client);
        metrics.call_ended("not_answered (cause 19)", Duration::from_secs(3));
        let text = metrics.render();
        for line in [
            "voiceai_active_calls 0",
            "voiceai_calls_ended_total{reason=\"not_answered\"} 1",
            "voiceai_call_duration_seconds_bucket{le=\"5.0\"} 1",
            "voiceai_call_duration_seconds_count 1",
            "voiceai_ws_clients{endpoint=\"monitor\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
    }
}
