//! The calls: the registry the API reads, and the task that runs each call.

pub mod call;
pub mod recording;
pub mod registry;
mod relay;

pub use call::{
    CallContext, CallIds, CallPolicy, OriginateError, OutboundCall, media_channel_id, originate,
    run_inbound,
};
pub use registry::{
    BackendState, CallCommand, CallEntry, CallSnapshot, CallStats, CallStatus, Calls, CommandError,
    Direction, GatewayStats, NewCall,
};
