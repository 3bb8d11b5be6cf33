//! The service from outside: one test binary, a fresh app per test.

mod backend;
mod backfill;
mod connections;
mod console;
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

use salesforce_emulator as emulator;
