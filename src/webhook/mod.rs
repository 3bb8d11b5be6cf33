//! Where a webhook enters: signature verification and parsing of B2CORE's body.

pub mod event;
pub mod verify;

pub use event::{ClientData, ClientEvent, ClientId, Field, Parsed};
pub use verify::{sign_hex, sign_standard, StandardHeaders, VerifyError};
