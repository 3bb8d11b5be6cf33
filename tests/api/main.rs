//! The service from outside: one test binary, a fresh app per test.

mod backend;
mod backfill;
mod connections;
mod console;
#[path = "../support/salesforce_emulator.rs"]
mod emulator;
mod emulator_fidelity;
mod health;
mod helpers;
mod logs;
mod openapi;
mod orgs;
mod process;
mod secrets;
mod store;
mod sync;
mod webhooks;
