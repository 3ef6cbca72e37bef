//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod http;
pub mod layer;
pub mod quickstart;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod redis_server;
