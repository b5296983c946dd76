//! SIPp peers for tests: a caller (UAC) into the lab's inbound context, and callees (UAS)
//! on ports of their own. Each process is the test's own and is killed when dropped.
//!
//! The lab's shared carrier (a SIPp UAS on 127.0.0.1:5080 behind `PJSIP/<n>@trunk`) is
//! started by `asterisk_conf/lab start`; its numbering plan is in
//! `asterisk_conf/sipp/trunk-uas.xml`.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::pcap::CallerAudio;
use crate::rest::Error;
use crate::{unique_name, workspace_root};

/// A call placed by SIPp into Asterisk's inbound context (`asterisk_conf/sipp/uac.xml`).
#[derive(Debug, Clone)]
pub struct UacCall {
    /// The number dialled (the Request-URI user): the first Stasis argument.
    pub dialled: String,
    /// The caller's number (From user): the second Stasis argument.
    pub caller: String,
    /// The Stasis app that receives the call (sent in `X-Lab-Stasis-App`).
    pub app: String,
}

/// A running SIPp process owned by one test.
pub struct Sipp {
    child: Child,
    work_dir: PathBuf,
    port: u16,
}

/// A free UDP port on 127.0.0.1 whose next three ports are free too (SIPp's media
/// uses the port, RTCP the next, and video the two after).
fn free_udp_port_block() -> Result<u16, Error> {
    for _ in 0..50 {
        let first = UdpSocket::bind("127.0.0.1:0")?;
        let port = first.local_addr()?.port();
        if port % 2 == 1 || port > 65_000 {
            continue;
        }
        let others: Result<Vec<_>, _> = (1..4)
            .map(|i| UdpSocket::bind(("127.0.0.1", port + i)))
            .collect();
        if others.is_ok() {
            return Ok(port);
        }
    }
    Err("no free block of UDP ports on 127.0.0.1".into())
}

fn free_udp_port() -> Result<u16, Error> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The caller audio `asterisk_conf/sipp/uac.xml` plays: G.711 A-law speech shipped with
/// SIPp (the sip-tester package).
pub const DEFAULT_PCAP: &str = "/usr/share/sip-tester/g711a.pcap";

fn new_work_dir() -> Result<PathBuf, Error> {
    let work_dir = std::env::temp_dir().join(unique_name("sipp"));
    std::fs::create_dir_all(&work_dir)?;
    Ok(work_dir)
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Path of a scenario in `asterisk_conf/sipp/`.
pub fn scenario(name: &str) -> PathBuf {
    workspace_root()
        .join("asterisk_conf")
        .join("sipp")
        .join(name)
}

impl Sipp {
    /// Places `call` into the lab's Asterisk (127.0.0.1:5060) with real G.711 audio (the
    /// pcap that ships with SIPp, [`DEFAULT_PCAP`]).
    ///
    /// # Errors
    /// When SIPp cannot be started.
    pub fn call(call: &UacCall) -> Result<Sipp, Error> {
        let work_dir = new_work_dir()?;
        Self::call_in(call, scenario("uac.xml"), work_dir)
    }

    /// Places `call` with `audio` as the caller's RTP (written as a pcap, see
    /// [`crate::pcap`]), starting when the call is answered.
    ///
    /// # Errors
    /// When the pcap or the scenario cannot be written, or SIPp cannot be started.
    pub fn call_with_audio(call: &UacCall, audio: &CallerAudio) -> Result<Sipp, Error> {
        let work_dir = new_work_dir()?;
        let pcap = work_dir.join("caller.pcap");
        audio.write(&pcap)?;
        Self::call_playing_in(call, &pcap, work_dir)
    }

    /// Places `call` playing the pcap file `pcap` as the caller's RTP (Ethernet or Linux
    /// cooked link type, UDP; see [`crate::pcap`]) once the call is answered.
    ///
    /// # Errors
    /// When the scenario cannot be written, or SIPp cannot be started.
    pub fn call_playing(call: &UacCall, pcap: &Path) -> Result<Sipp, Error> {
        let work_dir = new_work_dir()?;
        Self::call_playing_in(call, pcap, work_dir)
    }

    /// Places `call` (with [`DEFAULT_PCAP`]'s audio) sending the extra SIP `headers` in
    /// its INVITE, e.g. `X-Lab-Broadcast: 1` for the lab's StasisBroadcast route.
    ///
    /// # Errors
    /// When a header is not a plain `Name: value` line, the scenario cannot be written,
    /// or SIPp cannot be started.
    pub fn call_with_headers(call: &UacCall, headers: &[(&str, &str)]) -> Result<Sipp, Error> {
        const ANCHOR: &str = "X-Lab-Stasis-App: [$app]";
        let template = std::fs::read_to_string(scenario("uac.xml"))?;
        if !template.contains(ANCHOR) {
            return Err(format!("uac.xml no longer sends {ANCHOR}: cannot add headers").into());
        }
        let mut lines = String::from(ANCHOR);
        for (name, value) in headers {
            let plain = |t: &str| !t.contains(['\r', '\n', '[', ']', '<', '>', '&']);
            if name.is_empty() || name.contains(':') || !plain(name) || !plain(value) {
                return Err(format!("not a plain SIP header: {name:?}: {value:?}").into());
            }
            lines.push_str(&format!("\n      {name}: {value}"));
        }
        let work_dir = new_work_dir()?;
        let file = work_dir.join("uac.xml");
        std::fs::write(&file, template.replace(ANCHOR, &lines))?;
        Self::call_in(call, file, work_dir)
    }

    fn call_playing_in(call: &UacCall, pcap: &Path, work_dir: PathBuf) -> Result<Sipp, Error> {
        let template = std::fs::read_to_string(scenario("uac.xml"))?;
        let quoted = format!("\"{DEFAULT_PCAP}\"");
        if !template.contains(&quoted) {
            return Err(
                format!("uac.xml no longer plays {DEFAULT_PCAP}: cannot substitute").into(),
            );
        }
        let absolute = std::path::absolute(pcap)?;
        let replacement = format!("\"{}\"", xml_escape(&absolute.display().to_string()));
        let file = work_dir.join("uac.xml");
        std::fs::write(&file, template.replace(&quoted, &replacement))?;
        Self::call_in(call, file, work_dir)
    }

    fn call_in(call: &UacCall, scenario_file: PathBuf, work_dir: PathBuf) -> Result<Sipp, Error> {
        let port = free_udp_port()?;
        let media = free_udp_port_block()?;
        let args: Vec<String> = vec![
            "127.0.0.1:5060".into(),
            "-sf".into(),
            scenario_file.display().to_string(),
            "-s".into(),
            call.dialled.clone(),
            "-set".into(),
            "caller".into(),
            call.caller.clone(),
            "-set".into(),
            "app".into(),
            call.app.clone(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-mp".into(),
            media.to_string(),
            "-m".into(),
            "1".into(),
        ];
        Self::spawn(&args, port, work_dir)
    }

    /// Runs `scenario_file` as a UAS on a free port of 127.0.0.1, echoing RTP.
    /// Dial it with [`Sipp::dial_string`].
    ///
    /// # Errors
    /// When SIPp cannot be started.
    pub fn uas(scenario_file: &Path) -> Result<Sipp, Error> {
        let port = free_udp_port()?;
        let media = free_udp_port_block()?;
        let args: Vec<String> = vec![
            "-sf".into(),
            scenario_file.display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-mp".into(),
            media.to_string(),
            "-rtp_echo".into(),
        ];
        Self::spawn(&args, port, new_work_dir()?)
    }

    fn spawn(args: &[String], port: u16, work_dir: PathBuf) -> Result<Sipp, Error> {
        let child = Command::new("sipp")
            .args(args)
            // The control socket listens on all interfaces unless told otherwise.
            .args(["-ci", "127.0.0.1", "-nostdin", "-trace_err", "-error_file"])
            .arg(work_dir.join("errors.log"))
            .current_dir(&work_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(work_dir.join("stderr.log"))?)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run sipp (install the sip-tester package): {e}"))?;
        Ok(Sipp {
            child,
            work_dir,
            port,
        })
    }

    /// The SIP port this process listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A PJSIP dial string that reaches this UAS through the lab's `trunk` endpoint.
    pub fn dial_string(&self, number: &str) -> String {
        format!("PJSIP/trunk/sip:{number}@127.0.0.1:{}", self.port)
    }

    /// Waits for SIPp to end by itself; kills it after `within`.
    ///
    /// # Errors
    /// When it is still running after `within`; the error includes SIPp's error log.
    pub async fn wait(mut self, within: Duration) -> Result<ExitStatus, Error> {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(format!(
                    "sipp still running after {within:?}; errors: {}",
                    self.errors()
                )
                .into())
            }
        }
    }

    /// What SIPp wrote to its standard error so far (e.g. how it read a pcap).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.work_dir.join("stderr.log")).unwrap_or_default()
    }

    /// What SIPp wrote to its error log so far.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.work_dir.join("errors.log")).unwrap_or_default()
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.work_dir);
    }
}
