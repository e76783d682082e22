//! The Web API's handlers, one module per qBittorrent API group: each reads
//! its parameters, asks the [`Daemon`](crate::daemon::service::Daemon) (model
//! and library), and answers as qBittorrent does.

pub mod actions;
pub mod add;
pub mod app;
pub mod categories;
pub mod stream;
pub mod transfer;
pub mod views;
