//! TEMPORARY shim until the generator emits EventType impls (branch model).
use crate::Event;
use crate::events::*;

/// An event type of the model: its `type` on the wire and how to find it in an [`Event`].
pub trait EventType: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// The event's `type`, e.g. `"StasisStart"`.
    const KIND: &'static str;
    /// The event when `event` is of this type.
    fn from_event(event: &Event) -> Option<&Self>;
}

macro_rules! shim {
    ($($name:ident)*) => {$(
        impl EventType for $name {
            const KIND: &'static str = stringify!($name);
            fn from_event(event: &Event) -> Option<&Self> {
                match event { Event::$name(e) => Some(e), _ => None }
            }
        }
    )*};
}
shim!(ApplicationMoveFailed ApplicationRegistered ApplicationReplaced ApplicationUnregistered BridgeAttendedTransfer BridgeBlindTransfer BridgeCreated BridgeDestroyed BridgeMerged BridgeVideoSourceChanged CallBroadcast CallClaimed ChannelCallerId ChannelConnectedLine ChannelCreated ChannelDestroyed ChannelDialplan ChannelDtmfReceived ChannelEnteredBridge ChannelHangupRequest ChannelHold ChannelLeftBridge ChannelStateChange ChannelTalkingFinished ChannelTalkingStarted ChannelToneDetected ChannelTransfer ChannelUnhold ChannelUserevent ChannelVarset ContactStatusChange DeviceStateChanged Dial EndpointStateChange MissingParams PeerStatusChange PlaybackContinuing PlaybackFinished PlaybackStarted RESTResponse RecordingFailed RecordingFinished RecordingStarted StasisEnd StasisStart TextMessageReceived );

impl Event {
    /// The event as `T` when it is of that type.
    pub fn downcast<T: EventType>(&self) -> Option<&T> {
        T::from_event(self)
    }
}
