//! The gateway: one ARI connection, the calls it takes, and how it stops.
//!
//! Inbound calls arrive as [`ari_client::IncomingChannel`]s; each runs in its own task
//! ([`crate::calls::run_inbound`]). A call that arrives while the gateway is full
//! (`max_calls`) or draining is not answered: it gets the channel variable
//! `VOICEAI_REFUSED` (`max_calls` or `draining`) and goes back to the dialplan
//! (`continue`), which can route it elsewhere.
//!
//! While ARI is disconnected, established calls keep their media (it does not travel on
//! the events socket); after the reconnect, the client's resync ends the handles of
//! channels that are gone, and their calls end with the reason `channel_gone`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ari_client::model::operations::asterisk;
use ari_client::{AppConnection, Client, DialplanTarget, IncomingChannel, Update, Updates};
use futures::StreamExt as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::calls::{CallContext, Calls, OutboundCall};

/// The channel variable a refused call carries back to the dialplan.
pub const REFUSED_VARIABLE: &str = "VOICEAI_REFUSED";

/// How long the calls get to tear down after the drain timeout hung them up.
const TEARDOWN_GRACE: Duration = Duration::from_secs(10);

/// What the gateway needs besides the call context.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// At most this many calls at once (inbound and outbound).
    pub max_calls: usize,
    /// Dial string of outbound calls, with `{number}` for the number.
    pub originate_endpoint: String,
    /// How long an outbound call may ring.
    pub originate_timeout: Duration,
    /// Caller id of outbound calls when the request names none.
    pub originate_caller_id: Option<String>,
    /// The ARI host and port (for the status route).
    pub ari_host: String,
    /// The ARI port.
    pub ari_port: u16,
}

/// Why an outbound call was not placed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OriginateRefused {
    /// ARI is not connected.
    #[error("Asterisk ARI is not connected")]
    NoAri,
    /// The gateway is at its maximum number of calls.
    #[error("the gateway is at its maximum of {0} calls")]
    Full(usize),
    /// The gateway is shutting down.
    #[error("the gateway is shutting down")]
    Draining,
    /// Asterisk refused the call.
    #[error("{0}")]
    Asterisk(String),
}

#[derive(Debug, Default, Clone)]
struct AriState {
    connected: bool,
    version: Option<String>,
}

struct Shared {
    context: Arc<CallContext>,
    settings: GatewaySettings,
    ari: Mutex<AriState>,
    connected: watch::Sender<bool>,
    draining: AtomicBool,
    /// Outbound calls being placed (counted against `max_calls` before they register).
    originating: AtomicUsize,
    tasks: TaskTracker,
    stop: CancellationToken,
}

/// The running gateway; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// Starts taking the calls of `context.app` (whose connection `updates` came from
    /// `start()`, so that none is missed); returns at once (ARI may still be connecting).
    pub fn start(context: CallContext, updates: Updates, settings: GatewaySettings) -> Gateway {
        let (connected, _) = watch::channel(false);
        let incoming = context.app.incoming_channels();
        let gateway = Gateway {
            shared: Arc::new(Shared {
                context: Arc::new(context),
                settings,
                ari: Mutex::new(AriState::default()),
                connected,
                draining: AtomicBool::new(false),
                originating: AtomicUsize::new(0),
                tasks: TaskTracker::new(),
                stop: CancellationToken::new(),
            }),
        };
        // Down until the first `Connected`: the series exists from the start.
        gateway
            .calls()
            .metrics()
            .ari_state(&gateway.ari_server(), false, false);
        tokio::spawn(gateway.clone().take_calls(incoming));
        tokio::spawn(gateway.clone().follow_connection(updates));
        tokio::spawn(gateway.clone().publish_stats());
        gateway
    }

    /// The call registry.
    pub fn calls(&self) -> &Calls {
        &self.shared.context.calls
    }

    /// The ARI connection.
    pub fn app(&self) -> &AppConnection {
        &self.shared.context.app
    }

    /// The settings.
    pub fn settings(&self) -> &GatewaySettings {
        &self.shared.settings
    }

    fn ari_state(&self) -> AriState {
        self.shared
            .ari
            .lock()
            .map(|state| state.clone())
            .unwrap_or_default()
    }

    /// Whether ARI is connected now.
    pub fn ari_connected(&self) -> bool {
        self.ari_state().connected
    }

    /// The Asterisk version, once read.
    pub fn asterisk_version(&self) -> Option<String> {
        self.ari_state().version
    }

    /// Whether new calls are taken: ARI is connected and the gateway is not draining.
    pub fn accepting_calls(&self) -> bool {
        self.ari_connected() && !self.draining()
    }

    /// Whether the gateway is draining.
    pub fn draining(&self) -> bool {
        self.shared.draining.load(Ordering::SeqCst)
    }

    /// Changes of the ARI connection's state (`true`: connected).
    pub fn connected_changes(&self) -> watch::Receiver<bool> {
        self.shared.connected.subscribe()
    }

    /// Calls `number` at `endpoint` (both validated by the caller; `None`: the configured
    /// originate endpoint) and, once answered, runs it through the AI flow. Returns the
    /// call id and channel id.
    ///
    /// # Errors
    /// [`OriginateRefused`] when not connected, full, draining, or refused by Asterisk.
    pub async fn originate(
        &self,
        number: &str,
        endpoint: Option<String>,
        caller_id: Option<String>,
        variables: BTreeMap<String, String>,
    ) -> Result<(String, String), OriginateRefused> {
        if self.draining() {
            return Err(OriginateRefused::Draining);
        }
        if !self.ari_connected() {
            return Err(OriginateRefused::NoAri);
        }
        let max = self.shared.settings.max_calls;
        // Counted from before the check, so that requests arriving together cannot all
        // pass it while the first is still waiting for Asterisk.
        let _slot = Originating::start(&self.shared.originating);
        if self.calls_in_progress() > max {
            return Err(OriginateRefused::Full(max));
        }
        let settings = &self.shared.settings;
        let call = OutboundCall {
            endpoint: endpoint
                .unwrap_or_else(|| settings.originate_endpoint.replace("{number}", number)),
            number: number.to_owned(),
            caller_id: caller_id.or_else(|| settings.originate_caller_id.clone()),
            variables: variables.into_iter().collect(),
            timeout: settings.originate_timeout,
        };
        crate::calls::originate(self.shared.context.clone(), call, &self.shared.tasks)
            .await
            .map_err(|error| OriginateRefused::Asterisk(error.0))
    }

    /// Stops taking calls, lets the active ones finish for up to `timeout`, then hangs up
    /// the rest and waits (bounded) for their teardown.
    pub async fn drain(&self, timeout: Duration) {
        self.shared.draining.store(true, Ordering::SeqCst);
        let active = self.calls().active_count();
        tracing::info!(active, ?timeout, "draining: no new calls");
        self.shared.tasks.close();
        if tokio::time::timeout(timeout, self.shared.tasks.wait())
            .await
            .is_err()
        {
            let left = self.calls().active_count();
            tracing::info!(left, "drain time over: hanging up the remaining calls");
            self.shared.context.hangup_all.cancel();
            if tokio::time::timeout(TEARDOWN_GRACE, self.shared.tasks.wait())
                .await
                .is_err()
            {
                tracing::warn!("some calls did not finish their teardown in time");
            }
        }
        self.shared.stop.cancel();
        self.shared.context.app.close();
    }

    async fn take_calls(self, mut incoming: ari_client::IncomingChannels) {
        loop {
            let channel = tokio::select! {
                () = self.shared.stop.cancelled() => return,
                channel = incoming.next_channel() => channel,
            };
            let Some(channel) = channel else { return };
            self.take(channel);
        }
    }

    /// The calls the gateway holds: registered ones, and taken ones whose task has not
    /// registered yet (calls that arrive together are taken one after the other before
    /// any of their tasks runs, so the registry alone would let them all in).
    fn calls_in_progress(&self) -> usize {
        self.shared.tasks.len().max(self.calls().active_count())
            + self.shared.originating.load(Ordering::SeqCst)
    }

    fn take(&self, incoming: IncomingChannel) {
        let refusal = if self.draining() {
            Some("draining")
        } else if self.calls_in_progress() >= self.shared.settings.max_calls {
            Some("max_calls")
        } else {
            None
        };
        let context = self.shared.context.clone();
        match refusal {
            None => {
                self.shared
                    .tasks
                    .spawn(crate::calls::run_inbound(context, incoming));
            }
            Some(reason) => {
                tracing::warn!(channel_id = %incoming.channel.id(), reason, "call refused: back to the dialplan");
                self.calls().metrics().call_refused(reason);
                // Not tracked: a refusal must not hold up the drain.
                tokio::spawn(async move {
                    let channel = incoming.channel;
                    if let Err(error) = channel.set_variable(REFUSED_VARIABLE, reason).await {
                        tracing::debug!(error = %error.chain(), "cannot mark the refused call");
                    }
                    if let Err(error) = channel
                        .continue_in_dialplan(DialplanTarget::default())
                        .await
                    {
                        tracing::warn!(error = %error.chain(), "cannot send the refused call back");
                    }
                });
            }
        }
    }

    fn set_ari(&self, change: impl FnOnce(&mut AriState)) {
        if let Ok(mut state) = self.shared.ari.lock() {
            change(&mut state);
        }
    }

    async fn follow_connection(self, mut updates: Updates) {
        loop {
            let update = tokio::select! {
                () = self.shared.stop.cancelled() => return,
                update = updates.next() => update,
            };
            let Some(update) = update else { return };
            match update {
                Update::Connected | Update::Reconnected => {
                    tracing::info!("ARI connected");
                    let again = matches!(update, Update::Reconnected);
                    self.calls().metrics().ari_state(&self.ari_server(), true, again);
                    self.set_ari(|state| state.connected = true);
                    let version = read_version(self.app().client()).await;
                    self.set_ari(|state| state.version = version.or(state.version.take()));
                    self.shared.connected.send_replace(true);
                }
                Update::Disconnected { error } => {
                    tracing::warn!(error = %error.chain(), "ARI disconnected: established calls keep their media");
                    self.set_ari(|state| state.connected = false);
                    self.calls().metrics().ari_state(&self.ari_server(), false, false);
                    self.shared.connected.send_replace(false);
                }
                Update::ReconnectFailed { error, retry_in } => {
                    tracing::debug!(error = %error.chain(), ?retry_in, "ARI reconnect failed");
                }
                Update::Resynced(snapshot) => {
                    let gone = self
                        .calls()
                        .active_channels()
                        .into_iter()
                        .filter(|(_, channel)| {
                            !snapshot.channels.iter().any(|c| c.id.as_str() == channel)
                        })
                        .count();
                    tracing::info!(
                        channels = snapshot.channels.len(),
                        calls_without_channel = gone,
                        "ARI resynced: calls whose channel is gone end"
                    );
                }
                Update::ResyncFailed { error } => {
                    tracing::warn!(error = %error.chain(), "ARI resync failed (retried)");
                }
                Update::Lagged { missed } => {
                    tracing::warn!(missed, "connection updates missed");
                }
                _ => {}
            }
        }
    }

    /// The ARI server's name in metrics: `host:port`.
    fn ari_server(&self) -> String {
        let settings = &self.shared.settings;
        format!("{}:{}", settings.ari_host, settings.ari_port)
    }

    async fn publish_stats(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.shared.stop.cancelled() => return,
                _ = tick.tick() => self.calls().publish_stats(),
            }
        }
    }
}

/// One outbound call being placed, counted while it lives.
struct Originating<'a>(&'a AtomicUsize);

impl<'a> Originating<'a> {
    fn start(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for Originating<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn read_version(client: &Client) -> Option<String> {
    match client.asterisk().get_info(asterisk::GetInfo::new()).await {
        Ok(info) => info.system.map(|system| system.version),
        Err(error) => {
            tracing::debug!(error = %error.chain(), "cannot read the Asterisk version");
            None
        }
    }
}
