//! One call, from its `StasisStart` to its teardown: answer, bridge, media channel,
//! backend, the audio relay, and whatever ends it (hang-up, transfer, failover).

use std::sync::Arc;
use std::time::Duration;

use ari_client::model::Event;
use ari_client::model::events::{ChannelDestroyed, StasisStart};
use ari_client::model::models::HangupReason;
use ari_client::model::operations::{bridges, channels};
use ari_client::{AppConnection, BridgeHandle, ChannelHandle, DialplanTarget, IncomingChannel};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::recording;
use super::registry::{
    BackendState, CallCommand, CallEntry, CallStatus, Calls, Direction, NewCall,
};
use super::relay::{self, RelayEnd};
use crate::backend::{self, BackendSettings};
use crate::media::{MediaFactory, MediaLeg};
use crate::protocol::CallInfo;
use crate::protocol::raw::StopReason;
use crate::protocol::twilio::StreamIds;

/// Prefix of every object id the gateway creates (prefix-free: fixed-width SIDs follow).
pub const ID_PREFIX: &str = "vg-";

/// How long the teardown's requests may take in all before the call is written off.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// What a call does when things go wrong, and what it tells the backend.
#[derive(Debug, Clone)]
pub struct CallPolicy {
    /// The Twilio account SID the bot sees.
    pub account_sid: String,
    /// How long the backend may be away before the call goes to the fallback.
    pub failover_after: Duration,
    /// Where the call goes when the backend stays away (`None`: hang up).
    pub fallback_endpoint: Option<String>,
    /// Music-on-hold class the caller hears while the backend is away (`None`: silence).
    pub hold_music: Option<String>,
    /// Channel variables passed to the backend.
    pub channel_variables: Vec<String>,
    /// The dialplan context of the raw protocol's `transfer` without a context.
    pub transfer_context: String,
    /// How long a transfer target may ring.
    pub transfer_timeout: Duration,
    /// Where calls' recordings are saved (`--record`); `None`: calls are not recorded.
    pub recordings_dir: Option<std::path::PathBuf>,
}

/// What every call shares.
pub struct CallContext {
    /// The name of the Asterisk server `app` reaches (calls are keyed by server).
    pub server: String,
    /// The ARI connection.
    pub app: AppConnection,
    /// The registry.
    pub calls: Calls,
    /// Media channels toward Asterisk.
    pub media: MediaFactory,
    /// The backend.
    pub backend: BackendSettings,
    /// Failure handling.
    pub policy: CallPolicy,
    /// Cancelled when the drain time is over: every call hangs up.
    pub hangup_all: CancellationToken,
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext").finish_non_exhaustive()
    }
}

/// The id of the media channel of the call `call_id`.
pub fn media_channel_id(call_id: &str) -> String {
    format!("{ID_PREFIX}media-{call_id}")
}

/// The ids of one call's objects.
#[derive(Debug, Clone)]
pub struct CallIds {
    /// Twilio ids (the call SID is the gateway's call id).
    pub stream: StreamIds,
    /// The mixing bridge.
    pub bridge: String,
    /// The media channel.
    pub media: String,
    /// A transfer target's channel.
    pub transfer: String,
    /// An outbound call's channel.
    pub outbound: String,
}

impl CallIds {
    /// New ids under `account_sid`.
    pub fn new(account_sid: &str) -> Self {
        let stream = StreamIds::random(account_sid);
        let sid = &stream.call_sid;
        Self {
            bridge: format!("{ID_PREFIX}bridge-{sid}"),
            media: media_channel_id(sid),
            transfer: format!("{ID_PREFIX}xfer-{sid}"),
            outbound: format!("{ID_PREFIX}out-{sid}"),
            stream,
        }
    }

    /// The call id.
    pub fn call_id(&self) -> &str {
        &self.stream.call_sid
    }
}

/// Runs an inbound call to its end.
pub async fn run_inbound(context: Arc<CallContext>, incoming: IncomingChannel) {
    let IncomingChannel { channel, start, .. } = incoming;
    let ids = CallIds::new(&context.policy.account_sid);
    let (caller_number, dialled) = numbers_of(&start);
    let (entry, commands) = context.calls.register(NewCall {
        call_id: ids.call_id().to_owned(),
        channel_id: channel.id().to_string(),
        server: context.server.clone(),
        caller_number: caller_number.clone(),
        called_number: dialled.clone(),
        direction: Direction::Inbound,
        media: context.media.settings().kind.as_str(),
        status: CallStatus::Answered,
    });
    let span = tracing::info_span!("call", call_id = %ids.call_id(), server = %context.server, channel_id = %channel.id());
    async move {
        tracing::info!(caller = %caller_number, dialled = %dialled, "call started");
        if let Err(error) = channel.answer().await {
            tracing::warn!(error = %error.chain(), "cannot answer");
            entry.finish("answer_failed");
            return;
        }
        entry.publish_answered();
        let info = CallInfo {
            channel_id: channel.id().to_string(),
            caller_number,
            caller_name: start.channel.caller.name.clone(),
            dialed_number: dialled,
            variables: Default::default(),
        };
        talk(&context, channel, entry, commands, ids, info).await;
    }
    .instrument(span)
    .await;
}

/// A request to call a number into the AI flow.
#[derive(Debug, Clone)]
pub struct OutboundCall {
    /// The dial string (`PJSIP/<number>@trunk`).
    pub endpoint: String,
    /// The number called (for the API and the bot).
    pub number: String,
    /// Caller id to present.
    pub caller_id: Option<String>,
    /// Channel variables to set.
    pub variables: Vec<(String, String)>,
    /// How long it may ring.
    pub timeout: Duration,
}

/// Why an outbound call could not be placed.
#[derive(Debug, thiserror::Error)]
#[error("cannot originate: {0}")]
pub struct OriginateError(pub String);

/// Places an outbound call and, once it is placed, runs it to its end in the background.
/// Returns the call id and channel id.
///
/// # Errors
/// When Asterisk refuses the originate.
pub async fn originate(
    context: Arc<CallContext>,
    call: OutboundCall,
    tasks: &tokio_util::task::TaskTracker,
) -> Result<(String, String), OriginateError> {
    let ids = CallIds::new(&context.policy.account_sid);
    let mut params = channels::Originate::new(call.endpoint.as_str())
        .app(context.app.app())
        .channel_id(ids.outbound.as_str())
        .timeout(i64::try_from(call.timeout.as_secs()).unwrap_or(600));
    if let Some(caller_id) = &call.caller_id {
        params = params.caller_id(caller_id.as_str());
    }
    if !call.variables.is_empty() {
        params = params.variables(call.variables.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    let channel = context
        .app
        .originate(params)
        .await
        .map_err(|error| OriginateError(error.chain().to_string()))?;
    let (entry, commands) = context.calls.register(NewCall {
        call_id: ids.call_id().to_owned(),
        channel_id: ids.outbound.clone(),
        server: context.server.clone(),
        caller_number: call.caller_id.clone().unwrap_or_default(),
        called_number: call.number.clone(),
        direction: Direction::Outbound,
        media: context.media.settings().kind.as_str(),
        status: CallStatus::Ringing,
    });
    let answer = (ids.call_id().to_owned(), ids.outbound.clone());
    let span = tracing::info_span!("call", call_id = %ids.call_id(), server = %context.server, channel_id = %ids.outbound);
    tasks.spawn(
        async move {
            tracing::info!(number = %call.number, "outbound call placed");
            run_outbound(context, channel, entry, commands, ids, call).await;
        }
        .instrument(span),
    );
    Ok(answer)
}

async fn run_outbound(
    context: Arc<CallContext>,
    mut channel: ChannelHandle,
    entry: CallEntry,
    mut commands: mpsc::Receiver<CallCommand>,
    ids: CallIds,
    call: OutboundCall,
) {
    let answered = tokio::select! {
        answered = channel
            .events
            .within(call.timeout + Duration::from_secs(5))
            .wait_until(|e| matches!(e, Event::StasisStart(_) | Event::ChannelDestroyed(_))) => answered,
        command = commands.recv() => {
            tracing::info!(?command, "outbound call cancelled before answer");
            let _ = channel.hangup(HangupReason::Normal).await;
            entry.finish("cancelled");
            return;
        }
        () = context.hangup_all.cancelled() => {
            let _ = channel.hangup(HangupReason::Normal).await;
            entry.finish("shutdown");
            return;
        }
    };
    match answered {
        Ok(event) if event.downcast::<StasisStart>().is_some() => {}
        Ok(event) => {
            let cause = event.downcast::<ChannelDestroyed>().map_or(0, |d| d.cause);
            tracing::info!(cause, "outbound call not answered");
            entry.finish(&format!("not_answered (cause {cause})"));
            return;
        }
        Err(error) => {
            tracing::info!(error = %error, "outbound call not answered");
            let _ = channel.hangup(HangupReason::Normal).await;
            entry.finish("not_answered");
            return;
        }
    }
    entry.set_status(CallStatus::Answered);
    let info = CallInfo {
        channel_id: channel.id().to_string(),
        caller_number: call.caller_id.unwrap_or_default(),
        caller_name: String::new(),
        dialed_number: call.number,
        variables: Default::default(),
    };
    talk(&context, channel, entry, commands, ids, info).await;
}

/// The caller's number and the dialled number: the `Stasis()` arguments
/// (`${EXTEN},${CALLERID(num)}`), else the channel's own.
fn numbers_of(start: &StasisStart) -> (String, String) {
    let arg = |n: usize| start.args.get(n).filter(|a| !a.is_empty()).cloned();
    let dialled = arg(0).unwrap_or_else(|| start.channel.dialplan.exten.clone());
    let caller = arg(1).unwrap_or_else(|| start.channel.caller.number.clone());
    (caller, dialled)
}

/// The answered call: bridge, media, backend, relay, and the end.
async fn talk(
    context: &CallContext,
    caller: ChannelHandle,
    entry: CallEntry,
    commands: mpsc::Receiver<CallCommand>,
    ids: CallIds,
    mut info: CallInfo,
) {
    let (bridge, leg) = match connect_media(context, &caller, &ids).await {
        Ok(parts) => parts,
        Err((reason, bridge)) => {
            tracing::warn!(%reason, "call set-up failed");
            hang_up(&caller).await;
            if let Some(bridge) = bridge {
                let _ = bridge.destroy().await;
            }
            entry.finish("setup_failed");
            return;
        }
    };
    let backend_variable = read_variables(context, &caller, &mut info).await;
    let url = match backend::resolve_url(
        &context.backend,
        &info.dialed_number,
        backend_variable.as_deref(),
    ) {
        Ok(url) => url,
        Err(error) => {
            tracing::warn!(%error, "no usable backend URL: using the default");
            context.backend.default_url.clone()
        }
    };
    let recording = start_recording(context, &bridge, &entry).await;
    entry.set_backend_url(&url);
    entry.set_status(CallStatus::Active);
    let parts = relay::Parts {
        context,
        entry: &entry,
        caller,
        bridge,
        leg,
        commands,
        ids: &ids,
        info: &info,
        url: &url,
    };
    let (end, parts) = relay::run(parts).await;
    finish(context, entry, end, parts, &ids, recording).await;
}

/// Starts the call's bridge recording when `--record` is on (a refusal is noted in the
/// call's record; the call goes on unrecorded).
async fn start_recording(
    context: &CallContext,
    bridge: &BridgeHandle,
    entry: &CallEntry,
) -> Option<ari_client::RecordingHandle> {
    context.policy.recordings_dir.as_ref()?;
    let name = recording::name_for(entry.call_id(), std::time::SystemTime::now());
    match recording::start(bridge, &name).await {
        Ok(handle) => Some(handle),
        Err(why) => {
            tracing::warn!(%why, "call not recorded");
            entry.metrics().recording(false);
            entry.set_recording(Err(why));
            None
        }
    }
}

async fn connect_media(
    context: &CallContext,
    caller: &ChannelHandle,
    ids: &CallIds,
) -> Result<(BridgeHandle, MediaLeg), (String, Option<BridgeHandle>)> {
    let bridge = context
        .app
        .create_bridge(
            bridges::Create::new()
                .r#type("mixing")
                .bridge_id(ids.bridge.as_str()),
        )
        .await
        .map_err(|e| (format!("cannot create the bridge: {}", e.chain()), None))?;
    if let Err(error) = bridge.add_channels([caller.id().clone()]).await {
        return Err((
            format!("cannot bridge the caller: {}", error.chain()),
            Some(bridge),
        ));
    }
    // Boxed: opening a leg is a large future (about 16 KB), and inline it would size the
    // whole call's task for as long as the call lasts.
    let leg = match Box::pin(context.media.open(&context.app, &ids.media)).await {
        Ok(leg) => leg,
        Err(error) => {
            return Err((
                format!("cannot open the media channel: {error}"),
                Some(bridge),
            ));
        }
    };
    if let Err(error) = bridge.add_channels([leg.channel.id().clone()]).await {
        let _ = leg.channel.hangup(HangupReason::Normal).await;
        return Err((
            format!("cannot bridge the media channel: {}", error.chain()),
            Some(bridge),
        ));
    }
    Ok((bridge, leg))
}

/// Reads the configured channel variables into `info`, and returns the backend URL
/// variable's value when set.
async fn read_variables(
    context: &CallContext,
    caller: &ChannelHandle,
    info: &mut CallInfo,
) -> Option<String> {
    for name in &context.policy.channel_variables {
        if let Ok(value) = caller.variable(name).await {
            info.variables.insert(name.clone(), value);
        }
    }
    caller
        .variable(&context.backend.url_variable)
        .await
        .ok()
        .filter(|value| !value.is_empty())
}

async fn hang_up(channel: &ChannelHandle) {
    if let Err(error) = channel.hangup(HangupReason::Normal).await {
        if !error.is_not_found() {
            tracing::debug!(error = %error.chain(), channel = %channel.id(), "hang-up failed");
        }
    }
}

/// Ends the call as the relay's end says: tell the backend, remove the media channel,
/// then hang up, transfer or continue the caller, and record the outcome.
async fn finish(
    context: &CallContext,
    entry: CallEntry,
    end: RelayEnd,
    parts: relay::Leftovers,
    ids: &CallIds,
    recording: Option<ari_client::RecordingHandle>,
) {
    let relay::Leftovers {
        mut caller,
        bridge,
        leg,
        backend,
        mut commands,
    } = parts;
    let stop = match &end {
        RelayEnd::CallerGone(_) => StopReason::Hangup,
        RelayEnd::Shutdown => StopReason::Shutdown,
        RelayEnd::Transfer { .. } | RelayEnd::Continue { .. } => StopReason::Transfer,
        RelayEnd::Hangup(_) => StopReason::BackendHangup,
    };
    if let Some(backend) = backend {
        backend.stop(stop).await;
    }
    entry.set_backend_state(
        if matches!(&end, RelayEnd::Transfer { failover: true, .. }) {
            BackendState::FailedOver
        } else {
            BackendState::Closed
        },
    );
    let media_channel = leg.channel;
    leg.tx.close().await;
    hang_up(&media_channel).await;
    let reason = match end {
        RelayEnd::CallerGone(reason) | RelayEnd::Hangup(reason) => {
            hang_up(&caller).await;
            reason.to_owned()
        }
        RelayEnd::Shutdown => {
            hang_up(&caller).await;
            "shutdown".to_owned()
        }
        RelayEnd::Continue {
            context: dialplan,
            extension,
        } => {
            let target = DialplanTarget::extension(dialplan, extension);
            match caller.continue_in_dialplan(target).await {
                Ok(()) => "transferred".to_owned(),
                Err(error) => {
                    tracing::warn!(error = %error.chain(), "cannot continue in the dialplan");
                    hang_up(&caller).await;
                    "transfer_failed".to_owned()
                }
            }
        }
        RelayEnd::Transfer { endpoint, failover } => {
            entry.set_status(CallStatus::Transferring);
            let reason =
                transfer(context, &mut caller, &bridge, &endpoint, ids, &mut commands).await;
            if failover && reason == "transferred" {
                "failed_over".to_owned()
            } else {
                reason
            }
        }
    };
    if let Some(recording) = &recording {
        recording::stop(recording).await;
    }
    if tokio::time::timeout(TEARDOWN_TIMEOUT, bridge.destroy())
        .await
        .is_err()
    {
        tracing::debug!("bridge destroy timed out");
    }
    // Saved before the call is recorded as ended, so that its record and `call_ended`
    // name the file.
    if let (Some(recording), Some(dir)) = (recording, &context.policy.recordings_dir) {
        let saved = recording::save(recording, dir).await;
        if let Err(why) = &saved {
            tracing::warn!(%why, "recording not saved");
        }
        entry.metrics().recording(saved.is_ok());
        entry.set_recording(saved);
    }
    tracing::info!(%reason, "call ended");
    entry.finish(&reason);
}

/// Calls `endpoint`, bridges it with the caller once answered, and stays until either
/// side hangs up or the API hangs the call up (`commands`). Returns the call's end reason.
async fn transfer(
    context: &CallContext,
    caller: &mut ChannelHandle,
    bridge: &BridgeHandle,
    endpoint: &str,
    ids: &CallIds,
    commands: &mut mpsc::Receiver<CallCommand>,
) -> String {
    tracing::info!(%endpoint, "transferring");
    if let Some(class) = &context.policy.hold_music {
        let _ = bridge.start_moh(Some(class)).await;
    }
    let params = channels::Originate::new(endpoint)
        .app(context.app.app())
        .channel_id(ids.transfer.as_str())
        .originator(caller.id().as_str())
        .timeout(i64::try_from(context.policy.transfer_timeout.as_secs()).unwrap_or(60));
    let mut target = match context.app.originate(params).await {
        Ok(target) => target,
        Err(error) => {
            tracing::warn!(error = %error.chain(), "transfer target refused");
            hang_up(caller).await;
            return "transfer_failed".to_owned();
        }
    };
    let answered = tokio::select! {
        answered = target
            .events
            .within(context.policy.transfer_timeout + Duration::from_secs(5))
            .wait_until(|e| matches!(e, Event::StasisStart(_) | Event::ChannelDestroyed(_))) => {
            matches!(answered, Ok(ref event) if event.downcast::<StasisStart>().is_some())
        }
        gone = caller_gone(caller) => {
            tracing::info!(reason = gone, "caller left while the transfer rang");
            hang_up(&target).await;
            return "caller_hangup".to_owned();
        }
        () = hangup_requested(commands) => {
            tracing::info!("hang-up requested while the transfer rang");
            hang_up(&target).await;
            hang_up(caller).await;
            return "hangup_requested".to_owned();
        }
    };
    let _ = bridge.stop_moh().await;
    if !answered {
        tracing::info!("transfer target did not answer");
        hang_up(&target).await;
        hang_up(caller).await;
        return "transfer_failed".to_owned();
    }
    if let Err(error) = bridge.add_channels([target.id().clone()]).await {
        tracing::warn!(error = %error.chain(), "cannot bridge the transfer target");
        hang_up(&target).await;
        hang_up(caller).await;
        return "transfer_failed".to_owned();
    }
    tracing::info!("transfer answered");
    tokio::select! {
        _ = caller_gone(caller) => hang_up(&target).await,
        _ = caller_gone(&mut target) => hang_up(caller).await,
        () = context.hangup_all.cancelled() => {
            hang_up(&target).await;
            hang_up(caller).await;
        }
        () = hangup_requested(commands) => {
            tracing::info!("hang-up of the transferred call requested");
            hang_up(&target).await;
            hang_up(caller).await;
            return "hangup_requested".to_owned();
        }
    }
    "transferred".to_owned()
}

/// Waits for the API's hang-up of a call that is being (or was) transferred; any other
/// command is skipped (the call is no longer the gateway's to transfer).
async fn hangup_requested(commands: &mut mpsc::Receiver<CallCommand>) {
    loop {
        match commands.recv().await {
            Some(CallCommand::Hangup) => return,
            Some(command) => tracing::info!(?command, "skipped: the call is transferred"),
            // The registry keeps the sender while the call is registered.
            None => std::future::pending::<()>().await,
        }
    }
}

/// Waits until `channel` leaves (hang-up, Stasis end, or gone); returns why.
pub(super) async fn caller_gone(channel: &mut ChannelHandle) -> &'static str {
    loop {
        match channel.events.next_event().await {
            None => return "channel_gone",
            Some(event) => {
                if let Some(reason) = departure(&event) {
                    return reason;
                }
            }
        }
    }
}

/// Whether `event` means the channel has left the call, and why.
pub(super) fn departure(event: &Event) -> Option<&'static str> {
    match event {
        Event::ChannelHangupRequest(_) | Event::ChannelDestroyed(_) => Some("caller_hangup"),
        Event::StasisEnd(_) => Some("caller_left"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefix_free_and_carry_the_call_sid() {
        let ids = CallIds::new("AC00000000000000000000000000000000");
        assert!(ids.call_id().starts_with("CA") && ids.call_id().len() == 34);
        for id in [&ids.bridge, &ids.media, &ids.transfer, &ids.outbound] {
            assert!(
                id.starts_with(ID_PREFIX) && id.ends_with(ids.call_id()),
                "{id}"
            );
        }
    }
}
