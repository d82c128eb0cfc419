pub mod accounts;
pub mod agent;
pub mod cli;
pub mod dialect;
pub mod kea;
pub mod upstream;
pub mod validate;
pub mod watch;
