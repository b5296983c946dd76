//! The figures a run prints, the same for both modes.

use crate::stamp::Percentiles;

/// One direction's frames and latency.
#[derive(Debug, Clone, Default)]
pub(crate) struct Direction {
    /// Frames counted as sent inside the window.
    pub(crate) sent: u64,
    /// Of those, how many never arrived.
    pub(crate) lost: u64,
    /// Arrived more than once.
    pub(crate) duplicates: u64,
    /// Added latency per frame (`None`: not measurable in this mode).
    pub(crate) latency: Option<Percentiles>,
    /// Of those, the frames the gateway held until their slot (backend → Asterisk).
    pub(crate) paced: Option<Percentiles>,
    /// What the latency is, for the printout.
    pub(crate) latency_note: &'static str,
    /// Whether the latency counts in `p99_added_ms` (it is the gateway's added latency).
    pub(crate) counted: bool,
    /// What `sent` covers, when not the window.
    pub(crate) sent_note: &'static str,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Figures {
    pub(crate) mode: String,
    /// Calls up during the window.
    pub(crate) calls: usize,
    pub(crate) window_s: f64,
    /// Gateway CPU over the window, in cores (1.0 = one core busy).
    pub(crate) gateway_cores: f64,
    /// This bench process's CPU over the window (the peers), in cores.
    pub(crate) peer_cores: f64,
    /// The whole machine's CPU over the window, in cores.
    pub(crate) machine_cores: f64,
    pub(crate) rss_idle_kib: u64,
    /// The gateway's CPU with no call, in cores.
    pub(crate) idle_cores: f64,
    pub(crate) rss_calls_kib: u64,
    pub(crate) hwm_kib: u64,
    pub(crate) threads: u64,
    /// Each gateway's RSS (KiB) at each sample time into the window, the last at its end.
    pub(crate) rss_samples: Vec<(std::time::Duration, Vec<u64>)>,
    /// The gateways, in the order of each sample's values.
    pub(crate) gateway_names: Vec<String>,
    /// Lab: calls that never streamed or whose session ended early (`None`: not counted).
    pub(crate) calls_lost: Option<usize>,
    /// Asterisk → backend.
    pub(crate) to_backend: Direction,
    /// Backend → Asterisk.
    pub(crate) to_asterisk: Direction,
    /// Anything that went wrong (calls that did not come up, unexpected requests, ...).
    pub(crate) problems: Vec<String>,
}

fn show(p: &Option<Percentiles>) -> String {
    match p {
        Some(p) if p.count > 0 => format!(
            "p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  ({} frames)",
            p.p50_ms, p.p99_ms, p.p999_ms, p.max_ms, p.count
        ),
        Some(_) => "no frames measured".to_owned(),
        None => "not measurable in this mode".to_owned(),
    }
}

impl Figures {
    /// Percent of one core per call.
    pub(crate) fn cpu_per_call_pct(&self) -> f64 {
        if self.calls == 0 {
            return f64::NAN;
        }
        self.gateway_cores * 100.0 / self.calls as f64
    }

    pub(crate) fn rss_per_call_kib(&self) -> f64 {
        if self.calls == 0 {
            return f64::NAN;
        }
        self.rss_calls_kib.saturating_sub(self.rss_idle_kib) as f64 / self.calls as f64
    }

    /// The worse direction's p99 (of those measured).
    pub(crate) fn p99_ms(&self) -> f64 {
        [&self.to_backend.latency, &self.to_asterisk.latency]
            .into_iter()
            .zip([self.to_backend.counted, self.to_asterisk.counted])
            .filter_map(|(p, counted)| p.as_ref().filter(|_| counted))
            .filter(|p| p.count > 0)
            .map(|p| p.p99_ms)
            .fold(f64::NAN, f64::max)
    }

    pub(crate) fn lost(&self) -> u64 {
        self.to_backend.lost + self.to_asterisk.lost
    }

    pub(crate) fn print(&self) {
        let per_call = self.cpu_per_call_pct();
        println!("mode: {}", self.mode);
        println!(
            "gateway cpu: {:.3} cores over the {:.1} s window = {per_call:.4} % of a core per call ({:.0} calls per core); {:.3} cores idle (no call); {} threads",
            self.gateway_cores,
            self.window_s,
            100.0 / per_call,
            self.idle_cores,
            self.threads
        );
        println!(
            "gateway rss: {} KiB idle, {} KiB with the calls up (peak {} KiB) = {:.1} KiB per call",
            self.rss_idle_kib,
            self.rss_calls_kib,
            self.hwm_kib,
            self.rss_per_call_kib()
        );
        let cores = crate::cores();
        println!(
            "machine: {:.2} of {cores} cores busy over the window: gateway {:.2}, this bench process (the peers) {:.2}, everything else {:.2}",
            self.machine_cores,
            self.gateway_cores,
            self.peer_cores,
            (self.machine_cores - self.gateway_cores - self.peer_cores).max(0.0)
        );
        if self.machine_cores >= 0.9 * cores as f64 {
            println!(
                "problem: the machine was saturated ({:.2} of {cores} cores busy): latency and loss show this machine's limit, and the CPU per call is that of an overloaded gateway (it batches), not of one that keeps up",
                self.machine_cores
            );
        }
        for (name, direction) in [
            ("asterisk -> backend", &self.to_backend),
            ("backend -> asterisk", &self.to_asterisk),
        ] {
            println!(
                "{name}: {} frames sent ({}), {} lost, {} duplicated",
                direction.sent,
                if direction.sent_note.is_empty() {
                    "in the window"
                } else {
                    direction.sent_note
                },
                direction.lost,
                direction.duplicates
            );
            println!(
                "{name}: added latency {}{}",
                show(&direction.latency),
                if direction.latency_note.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", direction.latency_note)
                }
            );
        }
        if let Some(paced) = &self.to_asterisk.paced {
            println!(
                "backend -> asterisk: of which held by the gateway until due: {}",
                show(&Some(*paced))
            );
        }
        self.print_rss_trend();
        // The same problem of many calls is one line with its count.
        let mut seen: Vec<(&str, usize)> = Vec::new();
        for problem in &self.problems {
            match seen.iter_mut().find(|(p, _)| *p == problem.as_str()) {
                Some((_, count)) => *count += 1,
                None => seen.push((problem, 1)),
            }
        }
        for (problem, count) in seen {
            match count {
                1 => println!("problem: {problem}"),
                n => println!("problem ({n} times): {problem}"),
            }
        }
        if let Some(lost) = self.calls_lost {
            println!("calls lost: {lost} (never streamed, or ended before the run ended them)");
        }
        let p99 = self.p99_ms();
        println!(
            "gateway calls={} cpu_per_call={per_call:.4} p99_added_ms={p99:.3} lost={}",
            self.calls,
            self.lost()
        );
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let rss = self.rss_per_call_kib();
        println!(
            "target: >=400 calls per core i.e. cpu_per_call<=0.25 ({per_call:.4}: {}), p99<1 ms ({p99:.3}: {}), 0 lost ({}: {}), rss<64 KiB per call ({rss:.1}: {})",
            verdict(per_call <= 0.25),
            verdict(p99 < 1.0),
            self.lost(),
            verdict(self.lost() == 0),
            verdict(rss < 64.0),
        );
    }

    /// Over a long window: each gateway's RSS growth from the first sample (after the
    /// first minute, when the calls' buffers are allocated) to the end.
    fn print_rss_trend(&self) {
        let (Some((first_at, first)), Some((last_at, last))) =
            (self.rss_samples.first(), self.rss_samples.last())
        else {
            return;
        };
        if self.rss_samples.len() < 3 {
            return;
        }
        for (index, name) in self.gateway_names.iter().enumerate() {
            let (Some(&from), Some(&to)) = (first.get(index), last.get(index)) else {
                continue;
            };
            let growth = to as i64 - from as i64;
            let peak = self
                .rss_samples
                .iter()
                .filter_map(|(_, values)| values.get(index))
                .max()
                .copied()
                .unwrap_or(to);
            println!(
                "{name} rss trend: {from} KiB at {} s, {to} KiB at {} s ({growth:+} KiB, {:+.2} %), peak {peak} KiB",
                first_at.as_secs(),
                last_at.as_secs(),
                growth as f64 * 100.0 / from.max(1) as f64
            );
        }
    }
}
