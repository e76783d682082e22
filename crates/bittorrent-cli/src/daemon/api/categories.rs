//! `torrents/*` categories and tags.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Json;
use serde_json::{json, Map, Value};

use crate::daemon::api::actions::hashes;
use crate::daemon::error::ApiError;
use crate::daemon::model::split_tags;
use crate::daemon::params::Params;
use crate::daemon::service::Daemon;

/// `torrents/categories`: `{name: {name, savePath}}`.
pub async fn categories(State(daemon): State<Arc<Daemon>>) -> Json<Value> {
    let map: Map<String, Value> = daemon.read(|m| {
        m.config
            .categories
            .iter()
            .map(|(name, c)| (name.clone(), json!({"name": name, "savePath": c.save_path})))
            .collect()
    });
    Json(Value::Object(map))
}

/// `torrents/createCategory` (`category`, `savePath`).
pub async fn create_category(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    let name = params.required("category")?.trim().to_owned();
    let save_path = params.get("savePath").unwrap_or("").to_owned();
    daemon.change(|m| m.create_category(&name, &save_path))
}

/// `torrents/editCategory` (`category`, `savePath`).
pub async fn edit_category(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    let name = params.required("category")?.trim().to_owned();
    let save_path = params.required("savePath")?.to_owned();
    daemon.change(|m| m.edit_category(&name, &save_path))
}

/// `torrents/removeCategories` (`categories`, newline-separated).
pub async fn remove_categories(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    let list = params.required("categories")?.to_owned();
    let names: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    daemon.change(|m| m.remove_categories(&names));
    Ok(())
}

/// `torrents/setCategory` (`hashes`, `category`; "" for none).
pub async fn set_category(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    let category = params.required("category")?.trim().to_owned();
    let hashes = hashes(&daemon, &params)?;
    daemon.change(|m| m.set_category(&hashes, &category))
}

/// `torrents/tags`: every tag, sorted.
pub async fn tags(State(daemon): State<Arc<Daemon>>) -> Json<Value> {
    Json(daemon.read(|m| json!(m.config.tags)))
}

/// `torrents/createTags` (`tags`, comma-separated).
pub async fn create_tags(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    let tags = split_tags(params.required("tags")?)?;
    daemon.change(|m| m.create_tags(&tags));
    Ok(())
}

/// `torrents/deleteTags` (`tags`).
pub async fn delete_tags(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    let tags = split_tags(params.required("tags")?)?;
    daemon.change(|m| m.delete_tags(&tags));
    Ok(())
}

/// `torrents/addTags` (`hashes`, `tags`).
pub async fn add_tags(State(daemon): State<Arc<Daemon>>, params: Params) -> Result<(), ApiError> {
    let tags = split_tags(params.required("tags")?)?;
    let hashes = hashes(&daemon, &params)?;
    daemon.change(|m| m.add_tags(&hashes, &tags));
    Ok(())
}

/// `torrents/removeTags` (`hashes`, `tags`; none: every tag).
pub async fn remove_tags(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    let tags = split_tags(params.get("tags").unwrap_or(""))?;
    let hashes = hashes(&daemon, &params)?;
    daemon.change(|m| m.remove_tags(&hashes, &tags));
    Ok(())
}
