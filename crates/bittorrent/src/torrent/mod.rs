//! The torrent actor.
