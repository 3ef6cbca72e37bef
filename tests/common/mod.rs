//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod redis_server;
pub mod http;
pub mod quickstart;
