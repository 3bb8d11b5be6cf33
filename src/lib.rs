//! leadbridge: B2CORE's signed client webhooks in, Salesforce Leads out.
//!
//! Where things are: a webhook enters in [`http::webhooks`], is verified and
//! parsed by [`webhook`], and is stored by [`store`]; [`sync`] makes it a
//! Lead with [`mapping`] and sends it through [`salesforce`]. The types they
//! share are in [`domain`]; [`connections`] validates the operator's edits.

pub mod backfill;
pub mod clock;
pub mod configuration;
pub mod connections;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod import;
pub mod ingest;
pub mod mapping;
pub mod metrics;
pub mod salesforce;
pub mod startup;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod webhook;
