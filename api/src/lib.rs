//! The composition root of Stepwise: the command line, start-up, the HTTP API and its wire
//! types. It builds the action registry and the shared services and hands them to the engine.
//!
//! Architecture invariant: only this crate knows about actix-web and clap; it talks to the
//! database only through `stepwise_engine::Engine`.

pub mod auth;
pub mod body;
pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tls;
