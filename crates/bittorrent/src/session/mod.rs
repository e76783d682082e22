//! The session actor.
