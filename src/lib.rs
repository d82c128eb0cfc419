pub mod accounts;
pub mod cli;
pub mod dialect;
pub mod kea;
pub mod validate;
pub mod watch;
