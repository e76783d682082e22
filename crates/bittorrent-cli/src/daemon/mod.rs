//! `bittorrent-cli daemon`: one long-running session driven over a
//! qBittorrent-compatible Web API (v2), its state persisted in a data
//! directory and restored at start.
//!
//! # Layout
//! - `args`: the command line.
//! - `model` (records, categories, tags, config) and `prefs` (preferences):
//!   plain data and synchronous operations.
//! - `persist`: the data directory, written atomically.
//! - `service`: [`Daemon`](service::Daemon), the model over the
//!   `SessionHandle`, and the saver task.
//! - `torrents`: building, restoring, removing and moving torrents.
//! - `server`, `listener`, `params`, `error`: the axum server and its glue;
//!   `api/`: the handlers.
//! - `qbt` (pure parts of the Web API: JSON views, filters, sync deltas,
//!   auth, metrics) and `page` (the built-in web page).

pub mod api;
pub mod args;
pub mod auth;
pub mod error;
pub mod events;
pub mod listener;
pub mod model;
pub mod page;
pub mod params;
pub mod persist;
pub mod prefs;
// Some parsers and helpers of `qbt` are not used by the handlers (yet).
#[allow(dead_code)]
pub mod qbt;
pub mod server;
pub mod service;
pub mod torrents;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use bittorrent::portmap::PortMapConfig;
use bittorrent::prelude::*;
use tokio::signal::unix::{signal, SignalKind};

use crate::daemon::args::DaemonArgs;
use crate::daemon::model::{Config, Model};
use crate::daemon::persist::DataDir;
use crate::daemon::service::{Daemon, RunOptions};

/// Runs the daemon until SIGTERM, Ctrl-C or `app/shutdown`.
///
/// # Errors
/// A message for a failure to start (data directory, ports, credentials).
pub async fn run(args: DaemonArgs) -> Result<(), String> {
    let data = DataDir::open(&args.data_dir()?).map_err(|e| e.to_string())?;
    let mut model = load_model(&data, &args)?;
    let (credentials, new_hash) = auth::startup_credentials(
        &model.config.preferences.web_ui_username,
        args.web_password.as_deref(),
        &model.config.password_hash,
        args.api,
    )?;
    if let Some(hash) = new_hash {
        model.config.password_hash = hash;
    }
    let auth = auth::Auth::new(credentials, &model.config.preferences);
    data.save_config(&model.config).map_err(|e| e.to_string())?;
    data.keep_backups();
    let api = tokio::net::TcpListener::bind(args.api)
        .await
        .map_err(|e| format!("cannot listen for the Web API on {}: {e}", args.api))?;
    let api_addr = api.local_addr().map_err(|e| e.to_string())?;
    let session = start_session(&args, &model.config).await?;
    let options = RunOptions {
        use_trackers: !args.no_tracker,
        api_port: api_addr.port(),
        dht: !args.no_dht,
        pex: !args.no_pex,
    };
    let daemon = Arc::new(Daemon::new(session.clone(), data, model, options, auth));
    torrents::restore(&daemon).await;
    let saver = tokio::spawn(Arc::clone(&daemon).run_saver());
    let follower = tokio::spawn(events::run(Arc::clone(&daemon)));
    let server = tokio::spawn(server::serve(Arc::clone(&daemon), api));
    eprintln!("api listening on http://{api_addr}");
    if let Some(addr) = session.listen_addr() {
        eprintln!("peers listening on {addr}");
    }
    wait_for_stop(&daemon).await?;
    log::info!("stopping");
    daemon.stop.cancel();
    let _ = saver.await;
    let _ = follower.await;
    events::take_totals(&daemon).await;
    if let Err(e) = daemon.save(true).await {
        log::error!("final save failed: {e}");
    }
    session.shutdown();
    session.join().await;
    let _ = server.await;
    Ok(())
}

/// Waits for SIGTERM, SIGINT or the daemon's own stop (`app/shutdown`).
async fn wait_for_stop(daemon: &Daemon) -> Result<(), String> {
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = term.recv() => log::info!("SIGTERM"),
        _ = int.recv() => log::info!("SIGINT"),
        _ = daemon.stop.cancelled() => {}
    }
    Ok(())
}

/// The persisted model, with the command line's persisted settings applied.
fn load_model(data: &DataDir, args: &DaemonArgs) -> Result<Model, String> {
    let config = data.load_config().map_err(|e| e.to_string())?;
    let records = data.load_records().map_err(|e| e.to_string())?;
    let mut config = config.unwrap_or_else(|| Config::new(""));
    if config.preferences.save_path.is_empty() {
        config.preferences.save_path = data.root().join("downloads").display().to_string();
    }
    if let Some(path) = &args.save_path {
        config.preferences.save_path = path.display().to_string();
    }
    if args.bypass_local_auth {
        config.preferences.bypass_local_auth = true;
    }
    if let Some(name) = &args.web_username {
        config.preferences.web_ui_username.clone_from(name);
    }
    Ok(Model {
        config,
        torrents: records.map(|r| r.torrents).unwrap_or_default(),
    })
}

/// Starts the session from the preferences and this run's flags.
async fn start_session(args: &DaemonArgs, config: &Config) -> Result<SessionHandle, String> {
    let prefs = &config.preferences;
    let port = args.port.unwrap_or(prefs.listen_port);
    let bind = args.bind.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    let listen = SocketAddr::new(bind, port);
    let dht = if args.no_dht || !prefs.dht {
        None
    } else {
        let bootstrap = crate::dht_bootstrap(&args.dht_bootstrap).await;
        let state = args.data_dir()?.join("dht.state");
        Some(crate::dht_config(bind, port, bootstrap, state))
    };
    let config = SessionConfig {
        listen: Some(listen),
        dht,
        port,
        use_trackers: !args.no_tracker,
        encryption: args
            .encryption
            .map_or_else(|| prefs::encryption_policy(prefs), Into::into),
        utp: args.utp.into(),
        port_mapping: (!args.no_port_mapping).then(PortMapConfig::default),
        rate_limits: prefs::rate_limits(prefs, config.alt_speed_enabled),
        share_limits: prefs::share_limits(prefs),
        queue: prefs::queue(prefs),
        pex: !args.no_pex && prefs.pex,
        ..SessionConfig::default()
    };
    let (session, _events) = Session::spawn_with(config);
    if session.listen_addr().is_none() {
        session.shutdown();
        session.join().await;
        return Err(format!(
            "cannot listen for peers on {listen} (is the port in use? try -p)"
        ));
    }
    Ok(session)
}
