//! Data types of the Asterisk REST Interface (ARI): every model, event and operation,
//! generated from Asterisk's own api-docs. No I/O: `ari-client` does that.
//!
//! - [`models`]: data types such as [`models::Channel`] and string enums such as
//!   [`models::ChannelState`] (each with an `Unknown(String)` catch-all).
//! - [`Event`]: any event, decoded by its `type`; unknown types are kept as
//!   [`Event::Unknown`] with their raw JSON, never an error. Every event struct
//!   implements [`EventType`], so `event.downcast::<events::StasisStart>()` finds one type.
//!   [`Event::channel_ids`] and its siblings return [`EventIds`], which holds the ids of
//!   any known event without allocating.
//! - [`operations`]: a parameter struct per operation implementing [`Operation`].
//! - [`ids`]: typed ids ([`ChannelId`], [`BridgeId`], ...).
//!
//! Decoding never fails on a field or enum value added by a newer Asterisk: fields that
//! some supported release omits are `Option`, unknown fields are ignored. The model is
//! generated from Asterisk 22.10.1 and checked against the specs of 18, 20, 21, 22 and 23
//! (see [`CHECKED_RELEASES`]).
//!
//! ```
//! use ari_model::Event;
//!
//! let text = r#"{"type":"ChannelDtmfReceived","application":"demo","timestamp":"2026-11-22T04:16:09.015+0000",
//!   "digit":"5","duration_ms":120,"channel":{"id":"1700000000.1","name":"PJSIP/trunk-00000001",
//!   "state":"Up","protocol_id":"","caller":{"name":"","number":"100"},"connected":{"name":"","number":""},
//!   "accountcode":"","dialplan":{"context":"inbound","exten":"100","priority":1,"app_name":"Stasis",
//!   "app_data":"demo"},"creationtime":"2026-11-22T04:16:08.000+0000","language":"en"}}"#;
//! let event = Event::from_json_str(text)?;
//! assert_eq!(event.kind(), "ChannelDtmfReceived");
//! assert_eq!(event.channel_ids(), ["1700000000.1"]);
//! if let Event::ChannelDtmfReceived(dtmf) = &event {
//!     assert_eq!(dtmf.digit, "5");
//! }
//! # Ok::<(), ari_model::EventDecodeError>(())
//! ```
//!
//! Operations carry everything a client needs to send them:
//!
//! ```
//! use ari_model::operations::channels::Originate;
//! use ari_model::{HttpMethod, Operation};
//!
//! let originate = Originate::new("PJSIP/1000@trunk")
//!     .app("dialer")
//!     .channel_id("call-1")
//!     .variables([("CAMPAIGN", "7")]);
//! assert_eq!(Originate::METHOD, HttpMethod::Post);
//! assert_eq!(originate.path(), "/channels");
//! assert!(originate.query().contains(&("channelId", "call-1".to_owned())));
//! assert_eq!(originate.body().unwrap()["variables"]["CAMPAIGN"], "7");
//! assert_eq!(Originate::error_reason(409), Some("Channel with given unique ID already exists."));
//! ```
#![warn(missing_docs)]

pub mod event_ids;
mod event_support;
mod event_type;
mod generated;
pub mod ids;
pub mod media;
pub mod operation;
mod string_enum;
mod timestamp;
pub mod version;

pub use event_ids::EventIds;
pub use event_support::EventDecodeError;
pub use event_type::EventType;
pub use generated::events::Event;
pub use generated::{ARI_VERSION, CHECKED_RELEASES, SPEC_RELEASE, events, models, operations};
pub use ids::{
    ApplicationName, BridgeId, ChannelId, DeviceName, MailboxName, ModuleName, PlaybackId,
    RecordingName, SoundId,
};
pub use operation::{ErrorResponse, HttpMethod, Operation, ResponseKind};
pub use timestamp::Timestamp;
pub use version::{AsteriskVersion, Feature};
