//! The peer actor.
