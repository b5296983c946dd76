//! The calls: the registry the API reads, and the task that runs each call.

pub mod registry;

pub use registry::{
    BackendState, CallCommand, CallEntry, CallSnapshot, CallStats, CallStatus, Calls, CommandError,
    Direction, GatewayStats, NewCall,
};
