//! The service from outside: one test binary, a fresh app per test.

mod backend;
mod backfill;
mod batches;
mod connections;
mod console;
mod hardening;
mod health;
mod helpers;
mod logs;
mod openapi;
mod org_access;
mod orgs;
mod process;
mod secrets;
mod shutdown;
mod store;
mod store_states;
mod sync;
mod webhooks;

use salesforce_emulator as emulator;
