//! One real call through the gateway binary on the lab: a test bot ([`super::bot`]), a
//! gateway process of its own (its own Stasis app, API port, RTP ports and AudioSocket
//! port, so several can run at once), and a SIPp caller with real RTP
//! ([`ari_lab::sipp`]) whose call the lab's `[inbound]` context sends to that app.
//!
//! ```ignore
//! let setup = Setup::new(MediaKind::Rtp, AudioFormat::Alaw, ProtocolKind::Raw);
//! let call = LabCall::start(lab, &setup, Behaviour::echo(), &CallerAudio::tone(1000.0, secs(4))).await?;
//! let tap = Tap::start(lab, &call.channel_id, Spy::Out).await?;
//! // ... check call.conn (what the bot heard), tap.stop() (what the caller heard) ...
//! call.hang_up_by_bot().await?;
//! ```
//!
//! Also: block-wise tone analysis of what a tap recorded ([`ToneSpan`]).

use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use ari_lab::pcap::CallerAudio;
use ari_lab::sipp::{Sipp, UacCall};
use serde_json::Value;
use voiceai_gateway::audio::AudioFormat;
use voiceai_gateway::media::MediaKind;
use voiceai_gateway::protocol::ProtocolKind;

use super::WAIT;
use super::bot::{Action, Behaviour, Bot, Conn};
use super::gateway::Gateway;
use super::http::Http;

/// How long the debug gateway may take to say `ready`.
const READY: Duration = Duration::from_secs(30);

/// How a gateway is configured for a call: media transport and format toward Asterisk,
/// backend protocol, and (raw only) the backend's audio format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// `--media`.
    pub media: MediaKind,
    /// `--media-format`.
    pub media_format: AudioFormat,
    /// `--backend-protocol`.
    pub protocol: ProtocolKind,
    /// `--backend-format` (raw only; Twilio is always μ-law).
    pub backend_format: AudioFormat,
}

impl Setup {
    /// `media` carrying `media_format`, a `protocol` backend (raw: slin16).
    pub fn new(media: MediaKind, media_format: AudioFormat, protocol: ProtocolKind) -> Setup {
        Setup {
            media,
            media_format,
            protocol,
            backend_format: AudioFormat::Slin16,
        }
    }

    /// The same with the raw backend speaking `format`.
    pub fn backend_format(self, format: AudioFormat) -> Setup {
        Setup {
            backend_format: format,
            ..self
        }
    }

    /// E.g. `rtp/alaw + raw/slin16`, for messages.
    pub fn label(&self) -> String {
        match self.protocol {
            ProtocolKind::Twilio => format!("{}/{} + twilio", self.media, self.media_format),
            _ => format!(
                "{}/{} + {}/{}",
                self.media, self.media_format, self.protocol, self.backend_format
            ),
        }
    }

    /// The audio format the bot sends and receives.
    pub fn bot_format(&self) -> AudioFormat {
        match self.protocol {
            ProtocolKind::Twilio => AudioFormat::Ulaw,
            _ => self.backend_format,
        }
    }
}

/// A range of 16 UDP ports for one gateway's `--rtp-ports`, different for every gateway
/// this test process starts, in 21000-30999: below the ephemeral ports (32768-60999,
/// where SIPp's and the OS's ports come from), above Asterisk's own RTP range
/// (10000-20000, asterisk_conf/rtp.conf), clear of the media tests' 31000-31999 and the
/// gateway's default 40000-40999. Starts at an offset from the process id, so test
/// binaries running at the same time likely use different ranges; a port some other
/// program holds anyway is skipped by the gateway (it binds the next free one).
pub fn rtp_port_range() -> String {
    const FIRST: u16 = 21000;
    const BLOCKS: u16 = 625; // 625 blocks of 16 ports: 21000-30999
    static NEXT: AtomicU16 = AtomicU16::new(u16::MAX);
    let offset = (std::process::id() % u32::from(BLOCKS)) as u16;
    let _ = NEXT.compare_exchange(u16::MAX, offset, Ordering::Relaxed, Ordering::Relaxed);
    let block = NEXT.fetch_add(1, Ordering::Relaxed) % BLOCKS;
    let start = FIRST + block * 16;
    format!("{start}-{}", start + 15)
}

/// A call up through the gateway: the caller in Stasis, answered, its media leg and the
/// bot's connection open (`start` received).
pub struct LabCall {
    /// How the gateway is configured.
    pub setup: Setup,
    /// The gateway process.
    pub gateway: Gateway,
    /// Its REST API.
    pub http: Http,
    /// The test bot.
    pub bot: Bot,
    /// The call's connection to the bot.
    pub conn: Conn,
    /// The bot's `start` message.
    pub start: Value,
    /// The caller's channel in Asterisk.
    pub channel_id: String,
    /// The gateway's call id.
    pub call_id: String,
    /// The SIPp caller.
    pub sipp: Option<Sipp>,
}

impl LabCall {
    /// Starts a bot behaving as `behaviour`, a gateway configured by `setup`, and a SIPp
    /// call playing `audio`; returns once the bot has the call's `start`.
    ///
    /// # Errors
    /// When a step fails or takes too long; the error names the setup and holds the
    /// gateway's output.
    pub async fn start(
        lab: &ari_lab::Lab,
        setup: &Setup,
        behaviour: Behaviour,
        audio: &CallerAudio,
    ) -> Result<LabCall, String> {
        let label = setup.label();
        let bot = Bot::start(setup.protocol, behaviour).await;
        let app = ari_lab::unique_name("gw-audio");
        let url = bot.url("/bot");
        let rtp_ports = rtp_port_range();
        let args = [
            "--app",
            app.as_str(),
            "--backend-url",
            url.as_str(),
            "--backend-protocol",
            setup.protocol.as_str(),
            "--backend-format",
            setup.backend_format.as_str(),
            "--media",
            setup.media.as_str(),
            "--media-format",
            setup.media_format.as_str(),
            "--rtp-ports",
            rtp_ports.as_str(),
            // Port 0: the gateway binds a free port and tells Asterisk that one.
            "--audiosocket-listen",
            "127.0.0.1:0",
            "--hold-music",
            "none",
            // No more calls than the 8 even RTP ports (the gateway checks).
            "--max-calls",
            "8",
        ];
        let gateway = Gateway::start(lab, &args, &[]);
        gateway
            .wait_ready(READY)
            .await
            .map_err(|e| format!("{label}: {e}"))?;
        let http = Http::new(&gateway.base_url());
        let call = UacCall {
            dialled: "8000".into(),
            caller: "815550100".into(),
            app,
        };
        let sipp = Sipp::call_with_audio(&call, audio).map_err(|e| format!("{label}: {e}"))?;
        let fail = |what: String, gateway: &Gateway, sipp: &Sipp| {
            format!(
                "{label}: {what}\nsipp: {} {}\ngateway:\n{}",
                sipp.stderr(),
                sipp.errors(),
                gateway.output()
            )
        };
        let conn = match bot.wait_for_connection(WAIT).await {
            Ok(conn) => conn,
            Err(e) => return Err(fail(e, &gateway, &sipp)),
        };
        let start = match conn.wait_start(WAIT).await {
            Ok(start) => start,
            Err(e) => return Err(fail(e, &gateway, &sipp)),
        };
        let channel_id = match setup.protocol {
            ProtocolKind::Twilio => &start["start"]["customParameters"]["channel_id"],
            _ => &start["channel_id"],
        }
        .as_str()
        .unwrap_or_default()
        .to_owned();
        if channel_id.is_empty() {
            return Err(fail(
                format!("no channel id in the start: {start}"),
                &gateway,
                &sipp,
            ));
        }
        let active = http.get("/api/calls/active").await?.json();
        let call_id = active["calls"]
            .as_array()
            .and_then(|calls| {
                calls
                    .iter()
                    .find(|c| c["channelId"] == channel_id.as_str())
                    .and_then(|c| c["callId"].as_str())
            })
            .map(str::to_owned);
        let Some(call_id) = call_id else {
            return Err(fail(
                format!("the call is not in /api/calls/active: {active}"),
                &gateway,
                &sipp,
            ));
        };
        Ok(LabCall {
            setup: *setup,
            gateway,
            http,
            bot,
            conn,
            start,
            channel_id,
            call_id,
            sipp: Some(sipp),
        })
    }

    /// `GET /api/calls/{id}`'s `call`.
    ///
    /// # Errors
    /// When the request fails or does not answer 200.
    pub async fn snapshot(&self) -> Result<Value, String> {
        let reply = self
            .http
            .get(&format!("/api/calls/{}", self.call_id))
            .await?;
        if reply.status != 200 {
            return Err(format!(
                "{}: GET /api/calls/{}: {} {}",
                self.setup.label(),
                self.call_id,
                reply.status,
                reply.text
            ));
        }
        Ok(reply.json()["call"].clone())
    }

    /// The call's `framesOut` (frames the gateway sent to Asterisk).
    ///
    /// # Errors
    /// As [`LabCall::snapshot`], or when the field is missing.
    pub async fn frames_out(&self) -> Result<u64, String> {
        let call = self.snapshot().await?;
        call["framesOut"]
            .as_u64()
            .ok_or_else(|| format!("{}: no framesOut in {call}", self.setup.label()))
    }

    /// The bot ends the conversation (close 1000): the gateway hangs the caller up, SIPp
    /// answers the BYE and exits 0, the call is recorded as ended by the backend, and the
    /// gateway exits 0 on SIGTERM.
    ///
    /// # Errors
    /// When any of that does not happen in time.
    pub async fn hang_up_by_bot(mut self) -> Result<(), String> {
        let label = self.setup.label();
        self.conn.send(Action::Close(1000))?;
        if let Some(sipp) = self.sipp.take() {
            let errors = sipp.errors();
            let status = sipp
                .wait(WAIT)
                .await
                .map_err(|e| format!("{label}: {e}\ngateway:\n{}", self.gateway.output()))?;
            if !status.success() {
                return Err(format!("{label}: sipp exited {status}: {errors}"));
            }
        }
        // SIPp may exit (on the BYE) before the gateway has finished the teardown and
        // recorded the end: wait for its line saying so (it carries the call id).
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let from = self.gateway.line_count();
            let logged = self
                .gateway
                .lines()
                .iter()
                .any(|line| line.contains("call ended") && line.contains(&self.call_id));
            if logged {
                break;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            self.gateway
                .wait_for_line_from(from, "call ended", left)
                .await
                .map_err(|e| format!("{label}: the call's end is not logged: {e}"))?;
        }
        // The line comes just before the registry records the end: look a few times.
        let mut call = self.snapshot().await?;
        for _ in 0..20 {
            if call["status"] == "ended" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            call = self.snapshot().await?;
        }
        if call["status"] != "ended" || call["endReason"] != "backend_closed" {
            return Err(format!(
                "{label}: the call is not ended by the backend: {call}"
            ));
        }
        self.gateway.sigterm()?;
        let status = self.gateway.wait_exit(WAIT).await?;
        if !status.success() {
            return Err(format!("{label}: the gateway exited {status}"));
        }
        Ok(())
    }
}

/// Where a tone is in a recording, found in blocks of 10 ms: a block carries the tone
/// when it is not silent and most of its power is at the tone's frequency.
#[derive(Debug, Clone, PartialEq)]
pub struct ToneSpan {
    /// Block length.
    pub block: Duration,
    /// Blocks in the recording.
    pub blocks: usize,
    /// First block with the tone.
    pub first: usize,
    /// Last block with the tone.
    pub last: usize,
    /// Blocks with the tone.
    pub count: usize,
    /// Blocks between `first` and `last` without it (gaps: audio lost or late).
    pub gaps: usize,
    /// Where the gaps are (block indexes, at most 20).
    pub gap_blocks: Vec<usize>,
}

impl ToneSpan {
    /// Finds `frequency` in `samples` (at `rate` Hz); `None` when no block carries it.
    pub fn find(samples: &[i16], rate: u32, frequency: f64) -> Option<ToneSpan> {
        let size = (rate / 100) as usize;
        let flags: Vec<bool> = samples
            .chunks_exact(size)
            .map(|block| {
                ari_lab::audio::rms(block) > 300.0
                    && ari_lab::audio::tone_fraction(block, rate, frequency) > 0.5
            })
            .collect();
        let first = flags.iter().position(|&f| f)?;
        let last = flags.iter().rposition(|&f| f)?;
        let count = flags.iter().filter(|&&f| f).count();
        let gap_blocks = (first..=last).filter(|&i| !flags[i]).take(20).collect();
        Some(ToneSpan {
            gap_blocks,
            block: Duration::from_millis(10),
            blocks: flags.len(),
            first,
            last,
            count,
            gaps: last + 1 - first - count,
        })
    }

    /// From the start of the first tone block to the end of the last.
    pub fn duration(&self) -> Duration {
        self.block * (self.last + 1 - self.first) as u32
    }

    /// How long the recording goes on after the tone.
    pub fn after(&self) -> Duration {
        self.block * (self.blocks - 1 - self.last) as u32
    }
}
