//! The service: a validated [`Config`] in, a running gateway and API out, until SIGTERM
//! or SIGINT drains it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ari_client::Client;
use futures::FutureExt as _;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::api::{
    self, AriServerStatus, AriStatus, ControlError, GatewayControl, OriginateRequest, Originated,
};
use crate::backend::{self, BackendSettings};
use crate::calls::{CallContext, CallPolicy, Calls};
use crate::config::{Config, Secret};
use crate::events::EventBus;
use crate::gateway::{Gateway, GatewaySettings, OriginateRefused, ServerStart};
use crate::media::{MediaFactory, MediaSettings};

/// Why the service could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The ARI client cannot be built from the configuration.
    #[error("ARI client for {url}: {message}")]
    Ari {
        /// The ARI URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The backend URL map cannot be read.
    #[error(transparent)]
    BackendMap(#[from] backend::BackendError),
    /// The media transport cannot be set up (e.g. the AudioSocket address is taken).
    #[error("media transport: {0}")]
    Media(#[from] crate::media::MediaError),
    /// The API address cannot be bound.
    #[error("cannot listen on {address} (--listen): {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Signals cannot be watched.
    #[error("cannot watch for signals: {0}")]
    Signals(#[source] std::io::Error),
    /// `--record` is on and the recordings directory cannot be written.
    #[error(transparent)]
    RecordingsDir(#[from] crate::calls::recording::RecordingsDirError),
    /// The call log cannot be opened.
    #[error(transparent)]
    CallLog(#[from] crate::call_log::CallLogError),
}

fn exposed(secret: Option<&Secret>) -> Option<String> {
    secret.map(|secret| secret.expose().to_owned())
}

/// Runs the gateway until a signal asks it to stop, then drains it.
///
/// # Errors
/// When something it needs cannot be set up ([`AppError`]).
pub async fn run(config: Config) -> Result<(), AppError> {
    let stop = CancellationToken::new();
    let signals = watch_signals(stop.clone())?;
    let outcome = serve(config, stop).await;
    signals.abort();
    outcome
}

/// Runs the gateway until `stop` is cancelled, then drains it.
///
/// # Errors
/// When something it needs cannot be set up ([`AppError`]).
pub async fn serve(config: Config, stop: CancellationToken) -> Result<(), AppError> {
    // One client per Asterisk server, each with its own credentials.
    let mut clients = Vec::new();
    for server in &config.cluster.servers {
        let client = Client::builder(&server.url)
            .credentials(server.credentials())
            .build()
            .map_err(|error| AppError::Ari {
                url: server.url.clone(),
                message: error.chain().to_string(),
            })?;
        clients.push((server, client));
    }
    let url_by_number = match &config.backend.map_file {
        Some(path) => backend::load_url_map(path)?,
        None => Default::default(),
    };
    let backend = BackendSettings {
        protocol: config.backend.protocol,
        default_url: config.backend.default_url.clone(),
        url_by_number,
        url_variable: config.backend.url_variable.clone(),
        auth_token: exposed(config.backend.auth_token.as_ref()),
        raw_format: config.backend.raw_format,
        account_sid: config.twilio.account_sid.clone(),
        connect_timeout: config.backend.connect_timeout,
    };
    let media = MediaFactory::new(MediaSettings {
        kind: config.media.transport,
        format: config.media.format,
        rtp_address: config.media.rtp_address,
        rtp_ports: config.media.rtp_ports.clone(),
        audiosocket_listen: config.media.audiosocket_listen,
        connect_timeout: config.media.connect_timeout,
    })
    .await?;
    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .map_err(|source| AppError::Listen {
            address: config.api.listen,
            source,
        })?;
    let calls = Calls::new(EventBus::default(), config.calls.ended_calls_kept);
    let call_log = open_call_data(&config, &calls)?;
    let hangups = watch_hangups(call_log.clone())?;
    let hangup_all = CancellationToken::new();
    let policy = CallPolicy {
        account_sid: config.twilio.account_sid.clone(),
        failover_after: config.backend.failover_after,
        fallback_endpoint: config.calls.fallback_endpoint.clone(),
        hold_music: config.calls.hold_music.clone(),
        channel_variables: config.calls.channel_variables.clone(),
        transfer_context: config.calls.transfer_context.clone(),
        transfer_timeout: config.originate.timeout,
        recordings_dir: config
            .call_data
            .record
            .then(|| config.call_data.recordings_dir.clone()),
    };
    let servers = clients
        .into_iter()
        .map(|(server, client)| {
            let (app, updates) = client.app_connection([server.app.as_str()]).start();
            if let Some(dir) = policy.recordings_dir.clone() {
                let app = app.clone();
                tokio::spawn(async move {
                    crate::calls::recording::recover(&app, &dir).await;
                });
            }
            ServerStart {
                context: CallContext {
                    server: server.name.clone(),
                    app,
                    calls: calls.clone(),
                    media: media.clone(),
                    backend: backend.clone(),
                    policy: policy.clone(),
                    hangup_all: hangup_all.clone(),
                },
                updates,
                host: server.endpoint.host.clone(),
                port: server.endpoint.port,
            }
        })
        .collect();
    let gateway = Gateway::start(
        servers,
        GatewaySettings {
            max_calls: usize::try_from(config.calls.max_calls).unwrap_or(usize::MAX),
            originate_endpoint: config.originate.endpoint.clone(),
            originate_timeout: config.originate.timeout,
            originate_caller_id: config.originate.caller_id.clone(),
            claim_broadcasts: config.cluster.claim_broadcasts,
            call_lease: config.cluster.call_lease,
        },
    );
    let control = Arc::new(Control {
        gateway: gateway.clone(),
        app: config.app.clone(),
    });
    let api_config = api::ApiConfig::from_config(&config);
    let router = api::router(calls, control, api_config);
    let api_stop = CancellationToken::new();
    let server = tokio::spawn(api::serve(
        listener,
        router,
        api_stop.clone().cancelled_owned(),
    ));
    let announcer = tokio::spawn(announce_readiness(
        gateway.clone(),
        config.app.clone(),
        config.api.listen,
        config.ari.url.clone(),
    ));

    stop.cancelled().await;
    tracing::info!("stopping: draining calls");
    announcer.abort();
    gateway.drain(config.calls.drain_timeout).await;
    if let Some(log) = &call_log {
        // The drained calls' lines are queued: let them reach the file before exiting.
        if tokio::time::timeout(Duration::from_secs(5), log.sync())
            .await
            .is_err()
        {
            tracing::warn!(file = %log.path().display(), "call log not flushed within 5 s");
        }
    }
    api_stop.cancel();
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "API server ended with an error"),
        Err(error) => tracing::warn!(%error, "API server task failed"),
    }
    hangups.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Checks the recordings directory (with `--record`) and opens the call log (with
/// `--call-log`), so that neither fails only at the end of the first call.
fn open_call_data(
    config: &Config,
    calls: &Calls,
) -> Result<Option<crate::call_log::CallLog>, AppError> {
    let data = &config.call_data;
    if data.record {
        crate::calls::recording::check_dir(&data.recordings_dir)?;
    }
    let Some(path) = &data.call_log else {
        return Ok(None);
    };
    let log = crate::call_log::CallLog::open_counted(path, Some(calls.metrics().clone()))?;
    calls.set_call_log(log.clone());
    Ok(Some(log))
}

/// Logs `ready` when ARI first connects (the line operators and checks wait for), and
/// each later loss and return.
async fn announce_readiness(gateway: Gateway, app: String, listen: SocketAddr, ari_url: String) {
    let mut connected = gateway.connected_changes();
    // The first connection usually takes milliseconds: say "waiting" only when it does not.
    let quick = tokio::time::timeout(Duration::from_secs(1), connected.wait_for(|up| *up))
        .await
        .is_ok_and(|up| up.is_ok());
    if !quick {
        tracing::info!(%ari_url, "waiting for Asterisk ARI");
    }
    let mut announced = false;
    loop {
        if *connected.borrow_and_update() {
            if announced {
                tracing::info!(%app, "ARI is back: taking calls again");
            } else {
                tracing::info!(%app, api = %format!("http://{listen}"), "ready: taking calls for Stasis app {app}");
                announced = true;
            }
        }
        if connected.changed().await.is_err() {
            return;
        }
    }
}

/// SIGHUP reopens the call log, as logrotate expects of a daemon (`postrotate`); without
/// a call log it is ignored (its default would kill the gateway without a drain).
fn watch_hangups(
    call_log: Option<crate::call_log::CallLog>,
) -> Result<tokio::task::JoinHandle<()>, AppError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup()).map_err(AppError::Signals)?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match &call_log {
                Some(log) => log.reopen().await,
                None => tracing::info!("SIGHUP: no call log to reopen"),
            }
        }
    }))
}

fn watch_signals(stop: CancellationToken) -> Result<tokio::task::JoinHandle<()>, AppError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).map_err(AppError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(AppError::Signals)?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
        }
        stop.cancel();
    }))
}

/// The API's view of the gateway.
struct Control {
    gateway: Gateway,
    app: String,
}

impl GatewayControl for Control {
    fn ari(&self) -> AriStatus {
        // The first server stands for all in this seed-compatible shape.
        let servers = self.gateway.servers();
        let first = servers.first();
        AriStatus {
            connected: self.gateway.ari_connected(),
            host: first.map(|s| s.host.clone()).unwrap_or_default(),
            ari_port: first.map_or(0, |s| s.port),
            app_name: first.map_or_else(|| self.app.clone(), |s| s.app.clone()),
            asterisk_version: self.gateway.asterisk_version(),
        }
    }

    fn accepting_calls(&self) -> bool {
        self.gateway.accepting_calls()
    }

    fn ari_servers(&self) -> Vec<AriServerStatus> {
        self.gateway
            .servers()
            .into_iter()
            .map(|server| AriServerStatus {
                name: server.name,
                host: server.host,
                ari_port: server.port,
                app_name: server.app,
                connected: server.connected,
                asterisk_version: server.asterisk_version,
            })
            .collect()
    }

    fn originate(
        &self,
        request: OriginateRequest,
    ) -> BoxFuture<'_, Result<Originated, ControlError>> {
        async move {
            let placed = self
                .gateway
                .originate(
                    &request.phone_number,
                    Some(request.endpoint),
                    request.caller_id,
                    request.variables,
                )
                .await;
            match placed {
                Ok((call_id, channel_id)) => Ok(Originated {
                    call_id,
                    channel_id,
                }),
                Err(OriginateRefused::NoAri) => Err(ControlError::NotConnected),
                Err(refused @ (OriginateRefused::Full(_) | OriginateRefused::Draining)) => {
                    Err(ControlError::Refused(refused.to_string()))
                }
                Err(OriginateRefused::Asterisk(message)) => Err(ControlError::Asterisk(message)),
            }
        }
        .boxed()
    }
}
