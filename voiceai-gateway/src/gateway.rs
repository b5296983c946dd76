//! The gateway: its ARI connections (one per Asterisk server), the calls it takes, and
//! how it stops.
//!
//! Inbound calls arrive as [`ari_client::IncomingChannel`]s; each runs in its own task
//! ([`crate::calls::run_inbound`]). A call that arrives while the gateway is full
//! (`max_calls`) or draining is not answered: it gets the channel variable
//! `VOICEAI_REFUSED` (`max_calls` or `draining`) and goes back to the dialplan
//! (`continue`), which can route it elsewhere.
//!
//! With `claim_broadcasts`, a call the dialplan offers with `StasisBroadcast`
//! (`CallBroadcast`) is claimed (`POST /events/claim`) only while the gateway has room
//! for it and is not draining; a claim in flight holds a place like a call, so a burst
//! of broadcasts cannot claim more than `max_calls`. The winner's channel then enters
//! Stasis for us and runs like any inbound call; a lost claim (another gateway was
//! first) frees the place at once.
//!
//! Several Asterisk servers: each has its own connection, reconnect and resync; calls
//! are keyed by server and channel (the registry's `server`), `max_calls` counts them
//! all, and outbound calls go through the first connected server.
//!
//! While ARI is disconnected, established calls keep their media (it does not travel on
//! the events socket); after the reconnect, the client's resync ends the handles of
//! channels that are gone, and their calls end with the reason `channel_gone`.
//!
//! With a call lease (`call_lease`), the gateway keeps setting `TIMEOUT(absolute)` on its
//! calls' channels: if the gateway dies (kill -9, a crashed host), Asterisk hangs them
//! up within the lease instead of leaving callers in a bridge nobody serves.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ari_client::model::Event;
use ari_client::model::events::CallBroadcast;
use ari_client::model::operations::{asterisk, channels};
use ari_client::{AppConnection, Claim, Client, DialplanTarget, IncomingChannel, Update, Updates};
use futures::StreamExt as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::calls::{CallContext, Calls, OutboundCall};

/// The channel variable a refused call carries back to the dialplan.
pub const REFUSED_VARIABLE: &str = "VOICEAI_REFUSED";

/// How long the calls get to tear down after the drain timeout hung them up.
const TEARDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long a won claim holds its place while its `StasisStart` has not come (the
/// caller may hang up between the claim and the start).
const CLAIM_HOLD: Duration = Duration::from_secs(5);

/// What the gateway needs besides the call contexts.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// At most this many calls at once (inbound and outbound, on all servers).
    pub max_calls: usize,
    /// Dial string of outbound calls, with `{number}` for the number.
    pub originate_endpoint: String,
    /// How long an outbound call may ring.
    pub originate_timeout: Duration,
    /// Caller id of outbound calls when the request names none.
    pub originate_caller_id: Option<String>,
    /// Claim calls offered by `StasisBroadcast` (`CallBroadcast`) when there is room.
    pub claim_broadcasts: bool,
    /// Keep each call's channels alive for this long at a time (`TIMEOUT(absolute)`,
    /// renewed every third of it); `None`: no lease.
    pub call_lease: Option<Duration>,
}

/// One Asterisk server to take calls from.
#[derive(Debug)]
pub struct ServerStart {
    /// Its calls' context (its `server` name and ARI connection).
    pub context: CallContext,
    /// The connection's updates, from `start()` so that none is missed.
    pub updates: Updates,
    /// The ARI host (for the status route).
    pub host: String,
    /// The ARI port.
    pub port: u16,
}

/// One server's connection as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    /// The server's name.
    pub name: String,
    /// The ARI host.
    pub host: String,
    /// The ARI port.
    pub port: u16,
    /// The Stasis app the gateway serves there.
    pub app: String,
    /// Whether its events WebSocket is up.
    pub connected: bool,
    /// Its Asterisk version, once read.
    pub asterisk_version: Option<String>,
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

struct Server {
    index: usize,
    context: Arc<CallContext>,
    host: String,
    port: u16,
    ari: Mutex<AriState>,
}

impl Server {
    fn name(&self) -> &str {
        &self.context.server
    }

    fn app(&self) -> &AppConnection {
        &self.context.app
    }

    fn ari_state(&self) -> AriState {
        self.ari
            .lock()
            .map(|state| state.clone())
            .unwrap_or_default()
    }

    fn set_ari(&self, change: impl FnOnce(&mut AriState)) {
        if let Ok(mut state) = self.ari.lock() {
            change(&mut state);
        }
    }
}

struct Shared {
    servers: Vec<Arc<Server>>,
    calls: Calls,
    hangup_all: CancellationToken,
    settings: GatewaySettings,
    /// Whether at least one server is connected.
    connected: watch::Sender<bool>,
    draining: AtomicBool,
    /// Outbound calls being placed (counted against `max_calls` before they register).
    originating: AtomicUsize,
    /// Broadcast channels claimed or being claimed, by server index and channel id,
    /// until their `StasisStart` (counted against `max_calls` like calls).
    claims: Mutex<HashMap<(usize, String), tokio::time::Instant>>,
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
    /// Starts taking the calls of every server's app; returns at once (ARI may still be
    /// connecting). The contexts share one registry (the first one's), media factory
    /// and `hangup_all` token.
    ///
    /// # Panics
    /// When `servers` is empty.
    pub fn start(servers: Vec<ServerStart>, settings: GatewaySettings) -> Gateway {
        assert!(!servers.is_empty(), "a gateway needs at least one server");
        let (connected, _) = watch::channel(false);
        let calls = servers[0].context.calls.clone();
        let hangup_all = servers[0].context.hangup_all.clone();
        let mut started = Vec::new();
        let mut updates = Vec::new();
        for (index, server) in servers.into_iter().enumerate() {
            updates.push(server.updates);
            started.push(Arc::new(Server {
                index,
                context: Arc::new(server.context),
                host: server.host,
                port: server.port,
                ari: Mutex::new(AriState::default()),
            }));
        }
        let gateway = Gateway {
            shared: Arc::new(Shared {
                servers: started,
                calls,
                hangup_all,
                settings,
                connected,
                draining: AtomicBool::new(false),
                originating: AtomicUsize::new(0),
                claims: Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
                stop: CancellationToken::new(),
            }),
        };
        for (server, updates) in gateway.shared.servers.iter().zip(updates) {
            // Down until the first `Connected`: the series exists from the start.
            gateway
                .calls()
                .metrics()
                .ari_state(server.name(), false, false);
            let incoming = server.app().incoming_channels();
            tokio::spawn(gateway.clone().take_calls(server.clone(), incoming));
            tokio::spawn(gateway.clone().follow_connection(server.clone(), updates));
            if let Some(lease) = gateway.shared.settings.call_lease {
                tokio::spawn(gateway.clone().renew_leases(server.clone(), lease));
            }
        }
        tokio::spawn(gateway.clone().publish_stats());
        gateway
    }

    /// The call registry.
    pub fn calls(&self) -> &Calls {
        &self.shared.calls
    }

    /// The first server's ARI connection.
    pub fn app(&self) -> &AppConnection {
        self.shared.servers[0].app()
    }

    /// The settings.
    pub fn settings(&self) -> &GatewaySettings {
        &self.shared.settings
    }

    /// Every server's connection, in the order configured.
    pub fn servers(&self) -> Vec<ServerStatus> {
        self.shared
            .servers
            .iter()
            .map(|server| {
                let state = server.ari_state();
                ServerStatus {
                    name: server.name().to_owned(),
                    host: server.host.clone(),
                    port: server.port,
                    app: server.app().app().to_owned(),
                    connected: state.connected,
                    asterisk_version: state.version,
                }
            })
            .collect()
    }

    /// Whether ARI is connected now (to at least one server).
    pub fn ari_connected(&self) -> bool {
        self.shared
            .servers
            .iter()
            .any(|server| server.ari_state().connected)
    }

    /// The Asterisk version of the first server that has told it.
    pub fn asterisk_version(&self) -> Option<String> {
        self.shared
            .servers
            .iter()
            .find_map(|server| server.ari_state().version)
    }

    /// Whether new calls are taken: ARI is connected and the gateway is not draining.
    pub fn accepting_calls(&self) -> bool {
        self.ari_connected() && !self.draining()
    }

    /// Whether the gateway is draining.
    pub fn draining(&self) -> bool {
        self.shared.draining.load(Ordering::SeqCst)
    }

    /// Changes of the ARI connections' state (`true`: at least one server connected).
    pub fn connected_changes(&self) -> watch::Receiver<bool> {
        self.shared.connected.subscribe()
    }

    /// Calls `number` at `endpoint` (both validated by the caller; `None`: the configured
    /// originate endpoint) through the first connected server and, once answered, runs it
    /// through the AI flow. Returns the call id and channel id.
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
        let Some(server) = self
            .shared
            .servers
            .iter()
            .find(|server| server.ari_state().connected)
        else {
            return Err(OriginateRefused::NoAri);
        };
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
        crate::calls::originate(server.context.clone(), call, &self.shared.tasks)
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
            self.shared.hangup_all.cancel();
            if tokio::time::timeout(TEARDOWN_GRACE, self.shared.tasks.wait())
                .await
                .is_err()
            {
                tracing::warn!("some calls did not finish their teardown in time");
            }
        }
        self.shared.stop.cancel();
        for server in &self.shared.servers {
            server.app().close();
        }
    }

    async fn take_calls(self, server: Arc<Server>, mut incoming: ari_client::IncomingChannels) {
        loop {
            let channel = tokio::select! {
                () = self.shared.stop.cancelled() => return,
                channel = incoming.next_channel() => channel,
            };
            let Some(channel) = channel else { return };
            self.take(&server, channel);
        }
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, HashMap<(usize, String), tokio::time::Instant>> {
        self.shared
            .claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The calls the gateway holds: registered ones, taken ones whose task has not
    /// registered yet (calls that arrive together are taken one after the other before
    /// any of their tasks runs, so the registry alone would let them all in), outbound
    /// ones being placed, and broadcast calls claimed whose `StasisStart` has not come.
    fn calls_in_progress(&self) -> usize {
        let claims = self.claims().len();
        self.held(claims)
    }

    fn held(&self, claims: usize) -> usize {
        self.shared.tasks.len().max(self.calls().active_count())
            + self.shared.originating.load(Ordering::SeqCst)
            + claims
    }

    fn take(&self, server: &Server, incoming: IncomingChannel) {
        let key = (server.index, incoming.channel.id().to_string());
        let claimed = self.claims().remove(&key).is_some();
        let refusal = if self.draining() {
            Some("draining")
        } else if self.calls_in_progress() >= self.shared.settings.max_calls {
            Some("max_calls")
        } else {
            None
        };
        let context = server.context.clone();
        match refusal {
            None => {
                if claimed {
                    tracing::debug!(server = %server.name(), channel_id = %key.1, "claimed broadcast call entered Stasis");
                }
                if let Some(lease) = self.shared.settings.call_lease {
                    // At once, not at the next renewal: a gateway that dies right after
                    // taking the call must not leave it without a lease.
                    let client = server.app().client().clone();
                    let channel = key.1.clone();
                    tokio::spawn(async move { set_lease(&client, &channel, lease).await });
                }
                self.shared
                    .tasks
                    .spawn(crate::calls::run_inbound(context, incoming));
            }
            Some(reason) => {
                tracing::warn!(server = %server.name(), channel_id = %incoming.channel.id(), reason, "call refused: back to the dialplan");
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

    /// A `CallBroadcast` for one of our apps: claim it when there is room.
    fn offered(&self, server: &Arc<Server>, broadcast: &CallBroadcast) {
        let channel_id = broadcast.channel.id.to_string();
        if !self.shared.settings.claim_broadcasts {
            tracing::debug!(server = %server.name(), %channel_id, "broadcast call not claimed: --claim-broadcasts is off");
            return;
        }
        if self.draining() {
            tracing::info!(server = %server.name(), %channel_id, "broadcast call not claimed: draining");
            return;
        }
        {
            // Checked and reserved under one lock: broadcasts that arrive together
            // cannot all pass the check.
            let mut claims = self.claims();
            let held = self.held(claims.len());
            let max = self.shared.settings.max_calls;
            if held >= max {
                tracing::info!(server = %server.name(), %channel_id, held, max, "broadcast call not claimed: full");
                return;
            }
            claims.insert(
                (server.index, channel_id.clone()),
                tokio::time::Instant::now(),
            );
        }
        let gateway = self.clone();
        let server = server.clone();
        let broadcast = broadcast.clone();
        tokio::spawn(async move {
            let key = (server.index, channel_id.clone());
            let outcome = server.app().claim_broadcast(&broadcast).await;
            match outcome {
                Ok(Claim::Won) => {
                    tracing::info!(server = %server.name(), %channel_id, caller = broadcast.caller.as_deref().unwrap_or(""), "broadcast call claimed");
                    // The StasisStart usually came already (it may beat the answer);
                    // if the caller hung up in between, free the place after a while.
                    tokio::time::sleep(CLAIM_HOLD).await;
                    if gateway.claims().remove(&key).is_some() {
                        tracing::info!(server = %server.name(), %channel_id, "claimed call never entered Stasis: place freed");
                    }
                }
                Ok(lost) => {
                    gateway.claims().remove(&key);
                    tracing::debug!(server = %server.name(), %channel_id, ?lost, "broadcast claim lost: another gateway was first");
                }
                Err(error) => {
                    gateway.claims().remove(&key);
                    tracing::warn!(server = %server.name(), %channel_id, error = %error.chain(), "cannot claim the broadcast call");
                }
            }
        });
    }

    fn publish_connected(&self) {
        self.shared.connected.send_replace(self.ari_connected());
    }

    async fn follow_connection(self, server: Arc<Server>, mut updates: Updates) {
        let name = server.name().to_owned();
        loop {
            let update = tokio::select! {
                () = self.shared.stop.cancelled() => return,
                update = updates.next() => update,
            };
            let Some(update) = update else { return };
            match update {
                Update::Event(event) => match event.as_ref() {
                    Event::CallBroadcast(broadcast) => self.offered(&server, broadcast),
                    Event::CallClaimed(claimed) => {
                        tracing::debug!(server = %name, channel_id = %claimed.channel.id, winner = %claimed.winner_app, "broadcast call went to an app");
                    }
                    _ => {}
                },
                Update::Connected | Update::Reconnected => {
                    tracing::info!(server = %name, "ARI connected");
                    let again = matches!(update, Update::Reconnected);
                    self.calls().metrics().ari_state(&name, true, again);
                    server.set_ari(|state| state.connected = true);
                    let version = read_version(server.app().client()).await;
                    server.set_ari(|state| state.version = version.or(state.version.take()));
                    self.publish_connected();
                }
                Update::Disconnected { error } => {
                    tracing::warn!(server = %name, error = %error.chain(), "ARI disconnected: established calls keep their media");
                    server.set_ari(|state| state.connected = false);
                    self.calls().metrics().ari_state(&name, false, false);
                    self.publish_connected();
                }
                Update::ReconnectFailed { error, retry_in } => {
                    tracing::debug!(server = %name, error = %error.chain(), ?retry_in, "ARI reconnect failed");
                }
                Update::Resynced(snapshot) => {
                    let gone = self
                        .calls()
                        .channels_on(&name)
                        .into_iter()
                        .filter(|(_, channel)| {
                            !snapshot.channels.iter().any(|c| c.id.as_str() == channel)
                        })
                        .count();
                    tracing::info!(
                        server = %name,
                        channels = snapshot.channels.len(),
                        calls_without_channel = gone,
                        "ARI resynced: calls whose channel is gone end"
                    );
                }
                Update::ResyncFailed { error } => {
                    tracing::warn!(server = %name, error = %error.chain(), "ARI resync failed (retried)");
                }
                Update::Lagged { missed } => {
                    tracing::warn!(server = %name, missed, "connection updates missed");
                }
                _ => {}
            }
        }
    }

    /// Sets `TIMEOUT(absolute)` to `lease` on the channels of this server's calls (the
    /// caller's and the media leg's) every third of it.
    async fn renew_leases(self, server: Arc<Server>, lease: Duration) {
        let mut tick = tokio::time::interval((lease / 3).max(Duration::from_millis(500)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.shared.stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let client = server.app().client();
            for (call_id, channel_id) in self.calls().channels_on(server.name()) {
                for channel in [channel_id, crate::calls::media_channel_id(&call_id)] {
                    set_lease(client, &channel, lease).await;
                }
            }
        }
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

/// Lets Asterisk hang `channel` up `lease` from now unless renewed (`TIMEOUT(absolute)`).
async fn set_lease(client: &Client, channel: &str, lease: Duration) {
    let seconds = lease.as_secs().max(1).to_string();
    let params = channels::SetChannelVar::new(channel, "TIMEOUT(absolute)").value(seconds);
    if let Err(error) = client.channels().set_channel_var(params).await {
        // A channel not created yet, or gone: its call ends on its own.
        tracing::trace!(%channel, error = %error.chain(), "lease not set");
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
