//! The service from outside: one test binary, a fresh app per test.

mod connections;
mod health;
mod helpers;
mod openapi;
mod process;
mod secrets;
mod webhooks;
