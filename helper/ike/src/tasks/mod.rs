//! One module per exchange or concern, each adding `impl Engine` methods
//! that build or process its part of the messages (after libcharon's tasks).

pub mod child_create;
pub mod cookie;
pub mod delete;
pub mod ike_auth;
pub mod ike_init;
pub mod ike_rekey;
pub mod liveness;
pub mod natd;
